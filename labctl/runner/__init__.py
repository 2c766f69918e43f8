"""Carrying out scenarios on the engine: set up, start in order, check, tear down.

``run_all`` runs a list of scenarios (``jobs`` at a time); ``run_scenario`` one of them.
One scenario's run is split by concern (see docs/internals.md):

* ``context``  RunContext: engine, scenario, names, labels, deadline, cancel flag
* ``storage``  Storage: per-run volumes and temp dirs (returned as Volumes), a container's mounts
* ``plan``     StartPlan: start order, namespace donors, RunSpec of each container; Platforms
* ``roster``   Roster: containers by role, refusals, timeouts, ``after`` conditions
* ``probes``   ProbeSet: holders probing an IPC namespace or a container's files
* ``hostipc``  HostIPCGuard: host IPC before/after a host-IPC scenario
* ``timeline`` Timeline: the ``steps:``, the Stage the step actions act on
* ``teardown`` teardown(): remove by label, temp dirs, host leftovers; what remains
* ``scenario_run`` ScenarioRun (the checks' Observation) and run_scenario

No part holds another: ScenarioRun hands each what it needs and takes back what it
produced (see ``scenario_run``).

Everything a run creates is labelled (``labctl.runtime.labels``) with the run id and the
scenario name; teardown removes by those labels whatever happened before it
(failure, exception, Ctrl-C).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from labctl.errors import Interrupted
from labctl.runtime.labels import selector
from labctl.report.results import RunResult, ScenarioResult
from labctl.runner.context import Progress
from labctl.runner.scenario_run import ScenarioRun, run_scenario, unexpected
from labctl.runtime.engine import Engine
from labctl.scenario.model import Scenario

__all__ = ["ScenarioRun", "run_scenario", "run_all", "Progress"]

JOIN_S = 5.0  # after an interrupt, how long worker threads get to wind down


def run_all(engine: Engine, scenarios: list[Scenario], image: str, *, run_id: str, jobs: int = 1, keep: bool = False,
            cancel: threading.Event | None = None, progress: Progress | None = None,
            on_result: Callable[[ScenarioResult], None] | None = None,
            images: dict[str, str] | None = None, platform: str | None = None) -> RunResult:
    """Run scenarios, ``jobs`` at a time (host-IPC scenarios one at a time: they share keys).
    ``on_result`` is called once per finished scenario, one call at a time. Raises
    Interrupted (after the run's objects are removed) when ``cancel`` is set by a signal.
    ``image`` is the engine's own workload image; ``images`` maps other platforms to
    theirs and ``platform`` is the one of containers that name none (``run --platform``)."""
    t0 = time.monotonic()
    cancel = cancel or threading.Event()
    host_lock = threading.Lock()
    run = RunResult(run_id)
    lock = threading.Lock()

    def one(s: Scenario) -> ScenarioResult:
        if cancel.is_set():
            return ScenarioResult(s.name, s.file, "skipped", message="interrupted", tags=s.tags)
        if not s.runs_on(engine.name):
            res = ScenarioResult(s.name, s.file, "skipped", tags=s.tags,
                                 message=f"only on {', '.join(s.engines)} (this is {engine.name})")
            with lock:
                if on_result:
                    on_result(res)
            return res
        uses_host = any(c.ipc == "host" for c in s.containers)
        try:
            if uses_host:
                with host_lock:
                    res = run_scenario(engine, s, run_id, image, keep=keep, cancel=cancel, progress=progress,
                                       images=images, platform=platform)
            else:
                res = run_scenario(engine, s, run_id, image, keep=keep, cancel=cancel, progress=progress,
                                   images=images, platform=platform)
        except Exception as e:  # noqa: BLE001 - one scenario's failure never ends the run
            res = ScenarioResult(s.name, s.file, "error", message=unexpected(e), tags=s.tags)
        with lock:
            if on_result:
                on_result(res)
        return res

    results: dict[str, ScenarioResult] = {}
    if jobs <= 1:
        for s in scenarios:
            results[s.name] = one(s)
    else:
        _run_pool(engine, scenarios, one, jobs, run_id, cancel, results)
    run.scenarios = [results[s.name] for s in scenarios if s.name in results]
    run.duration_s = time.monotonic() - t0
    return run


def _run_pool(engine: Engine, scenarios: list[Scenario], one: Callable[[Scenario], ScenarioResult], jobs: int,
              run_id: str, cancel: threading.Event, results: dict[str, ScenarioResult]) -> None:
    """Run ``one`` over the scenarios in ``jobs`` worker threads, filling ``results``.

    Signals reach only the main thread. When one interrupts the wait here, the workers
    are told (``cancel``), the run is torn down by label from this thread (which also
    ends the workers' waits on containers that no longer exist), the workers get a
    bounded join, and a second sweep takes whatever a worker created meanwhile.
    ``with ThreadPoolExecutor`` is not used: its exit would wait for every worker."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="scenario")
    futures = {s.name: pool.submit(one, s) for s in scenarios}
    errors: list[BaseException] = []
    try:
        for name, f in futures.items():
            try:
                results[name] = f.result()
            except Interrupted:
                raise
            except Exception as e:  # noqa: BLE001 - re-raised below after all finished
                errors.append(e)
        pool.shutdown(wait=True)
    except BaseException:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        engine.remove_labelled(selector(run_id))
        deadline = time.monotonic() + JOIN_S
        for t in list(getattr(pool, "_threads", ())):
            t.join(max(0.0, deadline - time.monotonic()))
        engine.remove_labelled(selector(run_id))
        raise
    if errors:
        raise errors[0]
