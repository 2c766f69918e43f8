"""Calls to the Docker SDK (Docker and Podman's compatible API): the engine's own words for
its errors, a bound on a call that may hang, and another try for an engine-side race.

Foreign errors pass through unchanged; the modules that call the engine translate them into
``labctl.errors``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

import docker.errors
import requests.exceptions
import tenacity

from labctl.errors import EngineError

if TYPE_CHECKING:
    import docker

# The engine stopped answering (socket gone, read timeout): not the engine's refusal.
TRANSIENT = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


def explain(err: Exception) -> str:
    """The engine's own words for a docker SDK error (its ``explanation``), else the text."""
    if isinstance(err, docker.errors.APIError):
        text = err.explanation or str(err)
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return str(text).strip()
    return str(err).strip() or type(err).__name__


def _exit_race(err: BaseException) -> bool:
    """Podman's inspect answers 500 "read /proc/PID/cgroup: no such process" when it looks
    at a container whose process is exiting that moment (seen under load, in crash loops
    and at a container's end): asked again, it answers."""
    return (isinstance(err, docker.errors.APIError) and err.status_code == 500
            and "no such process" in explain(err))


def past_exit_races(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, an engine call that looks at a container (inspect, reload), called
    again (up to 6 tries, 10 ms doubling to 200 ms between them) while it fails for an exit
    race (``_exit_race``). Any other error, or the race's past the last try, is raised as
    the SDK raised it, for the caller to translate."""
    return tenacity.Retrying(retry=tenacity.retry_if_exception(_exit_race), stop=tenacity.stop_after_attempt(6),
                             wait=tenacity.wait_exponential(multiplier=0.01, max=0.2), reraise=True)(fn, *args)


def inspect(api: "docker.APIClient", ref: str) -> dict:
    """``docker inspect REF``: the engine's document (``past_exit_races``). The SDK's
    errors (NotFound, APIError) for the caller to translate."""
    return dict(past_exit_races(api.inspect_container, ref))


def bounded(what: str, timeout: float, fn: Callable[[], Any]) -> Any:
    """``fn()`` in a daemon thread, waited for at most ``timeout`` seconds: its result or
    its exception; EngineError naming ``what`` when it has not returned by then. The
    thread is left to the engine (it ends when the engine answers or the connection
    closes, at the latest when teardown removes the container)."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            box["error"] = e

    t = threading.Thread(target=call, name=f"engine-call {what[:40]}", daemon=True)
    t.start()
    t.join(max(0.0, timeout))
    if t.is_alive():
        raise EngineError(f"{what}: no answer from the engine within {timeout:.3g}s (the call hung; given up)")
    if "error" in box:
        raise box["error"]
    return box["value"]
