"""What every check kind is made of, and the helpers kinds share.

A kind is declared once, in its own module, as a :class:`CheckKind`: the body dataclass
(the model), its keys (an ``Obj`` that gives validation and the JSON Schema), its builder
(checked values -> body), its judge (one look at the run -> :class:`Verdict`) and its
one-line description. ``registry.KINDS`` lists them; everything else iterates that table.

Judges see a run only through :class:`Observation` (no engine import in this layer);
the runner implements it over the engine and the unit tests fake it.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from labctl.errors import LabctlError
from labctl.runtime.logs import ExitStatus, Output
from labctl.scenario.builder import get
from labctl.scenario.model import Expect
from labctl.scenario.spec import PDict, join

if TYPE_CHECKING:
    from labctl.scenario.builder import Builder
    from labctl.scenario.compound import Obj


class Observation(Protocol):
    """What a check may look at. The runner implements it over the engine; tests fake it."""

    def output(self, container: str) -> Output | None:
        """The container's output, or None if it never started."""

    def refusal(self, container: str) -> str | None:
        """The engine's reason if it refused to create/start the container."""

    def wait_exit(self, container: str, timeout: float) -> ExitStatus | None:
        """Block up to ``timeout`` s for the container to exit; None if still running."""

    def ipc_namespace(self, container: str) -> str | None:
        """The IPC namespace id (``ipc:[N]``) of a container, or of labctl for ``host``."""

    def probe_ipc(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        """Run ``shmlab probe ARGS`` inside the IPC namespace of ``container``, giving up
        (LabctlError naming the call) after ``timeout`` s (the check's deadline)."""

    def probe_file(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        """Run ``shmlab probe ARGS`` with the same volumes as ``container`` (``timeout`` as above)."""

    def leftovers(self) -> list[str]:
        """Objects of this scenario still on the engine (after teardown), and host IPC changes."""

    def watcher(self, body: Any) -> Any:
        """The tally this check's kind attached (``CheckKind.tally``) to its container's
        output before the container started; None if the container never started."""

    def restart_count(self, container: str) -> int | None:
        """The engine's restart count of the container (restarts by its restart policy;
        ``docker restart`` does not count), or None if it never started."""

    def memory_usage(self, container: str) -> int | None:
        """The container's memory cgroup usage in bytes (page cache and shmem included),
        or None when it does not run (the engine reports no usage then)."""

    def architecture(self) -> str:
        """The engine's architecture (``x86_64``, ``aarch64``): the C ABI layouts are read by."""


@dataclass(frozen=True)
class Verdict:
    """One look: ``ok``; ``final`` when later looks cannot change the answer."""

    ok: bool
    expected: str
    observed: str
    final: bool = False


@dataclass(frozen=True)
class Look:
    """The circumstances of one look: the check's ``deadline`` on ``clock`` (seconds), and
    whether the check must hold ``consistently`` (then "not yet" answers are final answers)."""

    deadline: float
    clock: Callable[[], float]
    consistently: bool = False

    def left(self) -> float:
        """Seconds until the deadline (never negative)."""
        return max(0.0, self.deadline - self.clock())


Build = Callable[["Builder", PDict, str], "tuple[Any, str]"]
Judge = Callable[[Any, Observation, Look], Verdict]


def _no_watch(body: Any) -> str | None:
    return None


def _no_tally(body: Any, out: Output) -> None:
    return None


@dataclass(frozen=True)
class CheckKind:
    """One kind of check; its module declares it and ``registry.KINDS`` lists it.

    name            the kind key in a ``checks:`` entry (``exit``, ``segment``...)
    model           the body dataclass the builder returns and the judge takes
    spec            its keys as an ``Obj`` (validation and JSON Schema); the Obj's
                    description is the kind's one-line description (handout, schema)
    build           (Builder, checked mapping, key path) -> (body, default check name);
                    records cross-reference errors on the Builder
    judge           (body, Observation, Look) -> Verdict: one look at the run
    watch           body -> the container whose new output may change the verdict
                    (the driver then waits on that output instead of polling)
    tally           (body, Output) -> an incremental tally (``labctl.checks.watch``) attached to
                    that container's output before it starts; the judge reads it through
                    ``Observation.watcher`` instead of rescanning the output
    after_teardown  judged after the scenario's objects were removed (cleanup)
    probes          body -> the container (or a tuple of them) whose IPC namespace the
                    judge probes (the runner then keeps a probe holder in that namespace
                    from its start)
    """

    name: str
    model: type
    spec: Obj
    build: Build
    judge: Judge
    watch: Callable[[Any], str | None] = _no_watch
    tally: Callable[[Any, Output], Any] = _no_tally
    after_teardown: bool = False
    probes: Callable[[Any], str | tuple[str, ...] | None] = _no_watch

    @property
    def description(self) -> str:
        return self.spec.description


# --------------------------------------------------------------------------- build helpers


def ref(b: Builder, d: PDict, key: str, path: str, **kw: Any) -> str:
    """The container named by ``key`` ("" if absent), checked against the file's containers."""
    if key not in d.node.value:
        return get(d, key, "")
    value = d.get(key)
    b.ref(value, d.node.value[key], join(path, key), **kw)  # an INVALID name has its error already
    return value if isinstance(value, str) else ""


def probe_ref(b: Builder, d: PDict, path: str) -> str:
    """The ``in:`` container of a kind that probes an IPC namespace: a probe can join only a
    shareable (or the host) namespace, so ``in`` must live in one (recorded error if not)."""
    where = ref(b, d, "in", path)
    owner = b.ipc_owner(where)
    if owner is not None and where in b.container_names:
        mode = owner[1]
        if mode not in ("shareable", "host"):
            via = f"lives in the IPC namespace of '{owner[0]}', whose" if owner[0] != where else "has"
            b.ctx.at(d.node.value["in"], join(path, "in"),
                     f"container '{where}' {via} ipc is '{mode}': a probe can only join a "
                     "shareable or host namespace")
    return where


# --------------------------------------------------------------------------- judge helpers


def signal_number(name: str) -> int:
    """``SIGBUS`` (or ``BUS``) -> 7. Raises LabctlError for an unknown name."""
    try:
        return int(_signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError as e:
        raise LabctlError(f"unknown signal {name!r}") from e


def describe_exit(status: ExitStatus) -> str:
    """``exit 0`` or ``killed by SIGBUS (exit 135)``."""
    if status.signal:
        try:
            name = _signal.Signals(status.signal).name
        except ValueError:
            name = f"signal {status.signal}"
        return f"killed by {name} (exit {status.code})" + (", OOM-killed" if status.oom_killed else "")
    return f"exit {status.code}" + (", OOM-killed" if status.oom_killed else "")


def not_started(obs: Observation, container: str, expected: str = "") -> Verdict | None:
    """A final failing Verdict when ``container`` never ran (refused or not started), else None."""
    if obs.output(container) is None:
        reason = obs.refusal(container)
        why = f"the engine refused it: {reason}" if reason else "it never started"
        return Verdict(False, expected or f"output from {container}",
                       f"container {container!r} did not run: {why}", final=True)
    return None


def octal(exp: Expect) -> str:
    """An expectation on permissions, written in octal (``== 0o666``)."""
    return exp.describe() if not isinstance(exp.value, int) else exp.describe().replace(repr(exp.value), oct(exp.value))
