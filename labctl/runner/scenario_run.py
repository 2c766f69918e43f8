"""One scenario on the engine: set up, start in order, check, tear down.

``ScenarioRun`` composes the parts and is what checks observe (``checks.Observation``);
no part holds another: each is handed what it needs here and returns what it produced
(``Storage.setup`` the volumes the ``StartPlan`` mounts, the plan the ``RunSpec`` the
``Roster`` starts, ...). ``run_scenario`` drives it and turns what happened into a
``ScenarioResult``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from labctl.checks import evaluate as checkmod
from labctl.errors import Interrupted, LabctlError
from labctl.runtime.logs import ExitStatus, Output
from labctl.report.results import CheckResult, ScenarioResult
from labctl.runner.context import Progress, RunContext
from labctl.runner.hostipc import HostIPCGuard
from labctl.runner.plan import Platforms, StartPlan, donors
from labctl.runner.probes import ProbeSet, probed_owners
from labctl.runner.roster import Roster
from labctl.runner.storage import Storage, Volumes
from labctl.runner.teardown import TeardownResult, teardown
from labctl.runner.timeline import Timeline
from labctl.runtime.engine import Engine
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import Scenario


class ScenarioRun:
    """The state of one scenario on the engine; implements ``checks.Observation``."""

    def __init__(self, engine: Engine, scenario: Scenario, run_id: str, image: str, *,
                 cancel: threading.Event | None = None, progress: Progress | None = None,
                 clock: Callable[[], float] = time.monotonic, keep: bool = False,
                 images: dict[str, str] | None = None, platform: str | None = None) -> None:
        self.ctx = RunContext(engine, scenario, run_id, image, keep=keep, cancel=cancel or threading.Event(),
                              progress=progress or (lambda _msg: None), clock=clock)
        self.scenario = scenario
        self.platforms = Platforms(image, lambda: engine.architecture(), dict(images or {}), platform)
        self.storage = Storage(self.ctx)
        self.roster = Roster(self.ctx)
        self.probes = ProbeSet(self.ctx, started=self.roster.get, refusal=self.roster.refused.get)
        self.host_ipc = HostIPCGuard(self.ctx)
        self.torn_down: TeardownResult | None = None
        self.timeline = Timeline(self.ctx, self, started=self.roster.get, refusal=self.roster.refused.get,
                                 waiting=self.roster.not_started.__contains__, start_later=self.start_later,
                                 attach=self.roster.attach_since_step)

    @property
    def deadline(self) -> float:
        return self.ctx.deadline

    def check_cancel(self) -> None:
        self.ctx.check_cancel()

    # ---------------------------------------------------------------- phases

    def setup(self) -> Volumes:
        """Host-IPC before-snapshot (if a cleanup check wants it), then volumes and dirs;
        returns the volumes made."""
        if self.host_ipc.wanted:
            self.host_ipc.arm()
        return self.storage.setup()

    def start_all(self, volumes: Volumes) -> None:
        """Start every container (mounting ``volumes``) once its ``after`` conditions hold;
        record refusals. A probed IPC owner gets its probe holder right after it starts."""
        plan = StartPlan(self.ctx, volumes, self.platforms)
        probed = probed_owners(self.scenario)
        for c in plan.order():
            self.check_cancel()
            why = self.roster.refused_after(c)
            if why is None:
                for a in c.after:
                    self.roster.wait_condition(c.name, a)
                why = self.roster.refused_donor(donors(c))
            if why is not None:
                self.roster.refused[c.name] = why
                continue
            self.ctx.progress(f"{self.scenario.name}: starting {c.name}")
            if self.roster.start(c, plan.run_spec(c)) is not None and c.name in probed and c.start:
                self.probes.start_for(c.name)

    def start_later(self, role: str) -> str:
        """A ``start`` step's first start of a ``start: false`` container (after its ``after``
        conditions), with its probe holder if a check looks into its namespace."""
        c = self.scenario.container(role)
        for a in c.after:
            self.roster.wait_condition(c.name, a)
        self.ctx.progress(f"{self.scenario.name}: starting {c.name}")
        self.roster.start_later(c)
        if c.name in probed_owners(self.scenario):
            self.probes.start_for(c.name)
        return "started (first run)"

    def disarm(self) -> None:
        """Cancel the container timeouts (the scenario is over: teardown or --keep)."""
        self.roster.disarm()

    def teardown(self) -> list[str]:
        """Remove everything of this scenario; returns the problems (see ``teardown``)."""
        self.torn_down = teardown(self.ctx, self.storage, self.host_ipc, self.roster, self.platforms)
        return self.torn_down.problems

    def logs(self) -> dict[str, str]:
        return self.roster.logs()

    # ---------------------------------------------------------------- Observation

    def output(self, container: str) -> Output | None:
        self.check_cancel()
        return self.roster.output(container)

    def watcher(self, body: object) -> object | None:
        return self.roster.tallies.get(id(body))

    def refusal(self, container: str) -> str | None:
        return self.roster.refused.get(container)

    def wait_exit(self, container: str, timeout: float) -> ExitStatus | None:
        return self.roster.wait_exit(container, timeout)

    def ipc_namespace(self, container: str) -> str | None:
        if container == "host":
            return self.host_ipc.namespace()
        return self.probes.ipc_namespace(container)

    def probe_ipc(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        self.check_cancel()
        return self.probes.probe_ipc(container, args, timeout)

    def probe_file(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        self.check_cancel()
        return self.probes.probe_file(container, args, timeout)

    def leftovers(self) -> list[str]:
        return list(self.torn_down.leftovers) if self.torn_down else []

    def restart_count(self, container: str) -> int | None:
        c = self.roster.get(container)
        return c.restart_count() if c is not None else None

    def memory_usage(self, container: str) -> int | None:
        self.check_cancel()
        c = self.roster.get(container)
        return c.memory_usage() if c is not None else None

    def architecture(self) -> str:
        """The engine's architecture: the probe runs natively there, and layouts follow its ABI."""
        return self.ctx.engine.architecture()


def run_scenario(engine: Engine, scenario: Scenario, run_id: str, image: str, *, keep: bool = False,
                 cancel: threading.Event | None = None, progress: Progress | None = None,
                 images: dict[str, str] | None = None, platform: str | None = None,
                 keep_logs: bool = False) -> ScenarioResult:
    """Carry out one scenario and return its result; raises Interrupted after teardown on Ctrl-C.
    ``image``: the engine's own workload image; ``images``/``platform``: see RunContext.
    ``result.logs`` holds each container's output tail for a scenario that did not pass,
    and also for one that did with ``keep_logs`` (the pytest fixture's outcomes)."""
    t0 = time.monotonic()
    run = ScenarioRun(engine, scenario, run_id, image, cancel=cancel, progress=progress, keep=keep,
                      images=images, platform=platform)
    result = ScenarioResult(scenario.name, scenario.file, "passed", tags=scenario.tags)
    interrupted: Interrupted | None = None
    phase = "setup"
    try:
        volumes = run.setup()
        phase = "start"
        run.start_all(volumes)
        phase = "steps"
        result.steps = run.timeline.play()
        stopped = next((i for i, s in enumerate(result.steps, 1) if s.status != "passed"), None)
        phase = "checks"
        for check in scenario.checks:
            if KINDS[check.kind].after_teardown:
                continue
            if check.engines and engine.name not in check.engines:
                result.checks.append(_not_here(check, engine))
                continue
            if stopped is not None:
                result.checks.append(CheckResult(check.name, "skipped", f"the timeline stopped at step {stopped}"))
                continue
            run.check_cancel()
            result.checks.append(checkmod.evaluate(check, run, hard_deadline=run.deadline))
            run.check_cancel()
    except Interrupted as e:
        interrupted = e
        result.status, result.message = "error", "interrupted"
    except LabctlError as e:
        result.status, result.message = "error", str(e)
    except Exception as e:  # noqa: BLE001 - an engine reply or a case labctl did not foresee
        # is this scenario's error, with its reason, never the whole run's (Interrupted is
        # a BaseException: it is not caught here)
        result.status, result.message = "error", f"{phase}: {unexpected(e)}"
    finally:
        run.disarm()
        result.logs = run.logs()
        if not keep:
            try:
                problems = run.teardown()
            except Exception as e:  # noqa: BLE001 - as above, for the teardown phase
                problems = [unexpected(e)]
            if problems:
                why = "teardown: " + "; ".join(problems)
                result.message = f"{result.message}; {why}" if result.status == "error" else why
                result.status = "error"
    if interrupted:
        raise interrupted
    for check in scenario.checks:
        if KINDS[check.kind].after_teardown:
            if check.engines and engine.name not in check.engines:
                result.checks.append(_not_here(check, engine))
            elif keep:
                result.checks.append(CheckResult(check.name, "skipped", "--keep: nothing was torn down"))
            else:
                result.checks.append(checkmod.evaluate(check, run))
    _verdict(result, run.roster.timed_out)
    result.duration_s = time.monotonic() - t0
    if result.status == "passed" and not keep_logs:
        result.logs = {}
    return result


def unexpected(e: BaseException) -> str:
    """An exception labctl did not translate, as a report line: its type, its words and
    where it was raised (``KeyError: 'x' (at labctl/runner/probes.py:42)``)."""
    import traceback

    where = ""
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        f = frames[-1]
        where = f" (at {'/'.join(f.filename.split('/')[-3:])}:{f.lineno})"
    return f"{type(e).__name__}: {e}{where}"


def _not_here(check, engine: Engine) -> CheckResult:  # noqa: ANN001 - a CheckSpec
    return CheckResult(check.name, "skipped", f"only on {', '.join(check.engines)} (this is {engine.name})")


def _verdict(result: ScenarioResult, timed_out: dict[str, float]) -> None:
    """The scenario's status from its checks: a container killed at its timeout or a check
    that could not be evaluated makes it an error (not a verdict); a failed check fails it."""
    if timed_out and result.status != "error":
        result.status = "error"
        result.message = "; ".join(f"container {name!r} ran past its timeout ({secs:g}s) and was killed"
                                   for name, secs in timed_out.items())
    failed_step = next((s for s in result.steps if s.status in ("failed", "error")), None)
    if result.status == "passed" and failed_step is not None:
        # A check step that failed is a verdict; an action the engine could not do is not.
        result.status = "failed" if failed_step.status == "failed" else "error"
        result.message = f"step {result.steps.index(failed_step) + 1} ({failed_step.name}): {failed_step.message}"
    if result.status == "passed":
        if any(c.status == "failed" for c in result.checks):
            result.status = "failed"
        elif any(c.status == "error" for c in result.checks):
            result.status = "error"
            result.message = next(c.message for c in result.checks if c.status == "error")
