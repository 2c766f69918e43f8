"""The timeline: a scenario's ``steps:`` run in order once its containers are up.

Each step is an engine action on a role's container (restart, kill, stop, start, pause,
unpause), a bounded ``wait``, or a check that must hold at that point. A step is bounded
by its own timeout and the scenario's deadline. The first step that fails (a check) or
errs (the engine refused an action, a wait ran out) stops the timeline: the later steps
are reported as not run and the scenario fails (a check) or errs (an action).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from labctl.checks import evaluate as checkmod
from labctl.errors import ContainerStartError, LabctlError
from labctl.report.results import StepResult
from labctl.runtime.engine import Container
from labctl.scenario.model import StepSpec

if TYPE_CHECKING:
    from labctl.runner.scenario_run import ScenarioRun

POLL_MIN = 0.02  # engine-state waits poll with a bounded backoff (no event to wait on)
POLL_MAX = 0.25


class StepFailed(LabctlError):
    """An action step could not be carried out (the engine refused it, a wait ran out)."""


class Timeline:
    """Runs ``scenario.steps`` against a started ``ScenarioRun``."""

    def __init__(self, run: ScenarioRun, *, sleep: Callable[[float], None] | None = None) -> None:
        import time

        self.run = run
        self.ctx = run.ctx
        self.sleep = sleep or time.sleep

    # ---------------------------------------------------------------- driving

    def play(self) -> list[StepResult]:
        """Every step in order; returns their results (later ones ``not run`` after the first
        that did not pass). Interrupted propagates (the caller tears down)."""
        clock = self.ctx.clock
        t0 = clock()
        results: list[StepResult] = []
        stopped = False
        for step in self.ctx.scenario.steps:
            if stopped:
                results.append(StepResult(step.name, step.action, "not run"))
                continue
            self.ctx.check_cancel()
            self.ctx.progress(f"{self.ctx.scenario.name}: step {len(results) + 1}: {step.name}")
            start = clock()
            result = self._one(step, start)
            result.at_s, result.duration_s = start - t0, clock() - start
            results.append(result)
            stopped = result.status != "passed"
        return results

    def _attach_since_step(self, body: object) -> None:
        """``since: step``: the check's tally is attached now, as its step begins, so it
        counts only the events printed from here on (the runner attached no other)."""
        out = self.run.roster.output(getattr(body, "container", ""))
        if out is not None:
            tally = checkmod.tally(body, out)
            if tally is not None:
                self.run.roster.tallies[id(body)] = tally

    def _one(self, step: StepSpec, start: float) -> StepResult:
        deadline = min(self.ctx.deadline, start + step.timeout)
        if step.check is not None:
            if getattr(step.check.body, "since_step", False):
                self._attach_since_step(step.check.body)
            r = checkmod.evaluate(step.check, self.run, clock=self.ctx.clock, hard_deadline=self.ctx.deadline)
            return StepResult(step.name, "check", r.status if r.status != "skipped" else "error",  # type: ignore[arg-type]
                              message=r.message, expected=r.expected, observed=r.observed)
        try:
            observed = self._act(step, deadline)
        except LabctlError as e:
            return StepResult(step.name, step.action, "error", message=str(e))
        return StepResult(step.name, step.action, "passed", observed=observed)

    # ---------------------------------------------------------------- actions

    def _container(self, step: StepSpec) -> Container:
        c = self.run.roster.get(step.container)
        if step.container in self.run.roster.not_started:
            raise StepFailed(f"{step.action} {step.container}: it has start: false and no step started it yet")
        if c is None:
            why = self.run.roster.refused.get(step.container) or "it was never started"
            raise StepFailed(f"{step.action} {step.container}: the container did not run ({why})")
        return c

    def _act(self, step: StepSpec, deadline: float) -> str:
        """Carry out one action; returns what was observed (for the report)."""
        if step.action == "start" and step.container in self.run.roster.not_started:
            try:
                return self.run.start_later(step.container)
            except ContainerStartError as e:
                raise StepFailed(f"the engine refused to start {step.container}: {e.reason}") from e
        c = self._container(step)
        if step.action == "restart":
            c.stop(step.grace)
            self._again(step.container, c)
            return "stopped and started again"
        if step.action == "stop":
            status = c.stop(step.grace)
            return f"stopped ({checkmod.describe_exit(status)})" if status else "stopped"
        if step.action == "start":
            self._again(step.container, c)
            return "started"
        if step.action == "kill":
            c.kill(step.signal)
            return f"sent {step.signal}"
        if step.action == "pause":
            c.pause()
            return "paused"
        if step.action == "unpause":
            c.unpause()
            return "unpaused"
        return self._wait(step, c, deadline)

    def _again(self, role: str, c: Container) -> None:
        """Start ``role`` again; its next lines are a new run (``run`` on its events), also
        for an image that prints no ``start`` event."""
        c.output.new_run()
        c.start()

    def _wait(self, step: StepSpec, c: Container, deadline: float) -> str:
        until = step.until or "exited"
        clock = self.ctx.clock
        if until not in ("exited", "running", "restarts"):
            out = c.output

            def seen() -> bool:  # under the output's lock (wait_for)
                return out.current_run == out.run and until in out.run_first

            while not out.wait_for(seen, min(deadline, clock() + 0.5), clock):
                self.ctx.check_cancel()
                if clock() >= deadline:
                    raise StepFailed(f"{step.container} printed no {until!r} event in its current run "
                                     f"(run {out.current_run}) within {step.timeout:g}s")
            return f"{until!r} seen in run {out.current_run}"
        pause = POLL_MIN
        while True:
            state = c.state()
            status = str(state.get("Status", ""))
            if until == "exited" and status in ("exited", "dead") and not state.get("Restarting"):
                return f"exited with {state.get('ExitCode')}"
            if until == "running" and status == "running":
                return "running"
            if until == "restarts":
                n = c.restart_count()
                if n >= (step.count or 1):
                    return f"restart count {n}"
            if clock() >= deadline:
                now = f"restart count {c.restart_count()}" if until == "restarts" else f"status {status}"
                raise StepFailed(f"{step.container} not {until}"
                                 + (f" {step.count} times" if until == "restarts" else "")
                                 + f" within {step.timeout:g}s ({now})")
            self.ctx.check_cancel()
            self.sleep(min(pause, max(0.0, deadline - clock())))
            pause = min(pause * 2, POLL_MAX)
