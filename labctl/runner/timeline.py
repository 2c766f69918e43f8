"""The timeline: a scenario's ``steps:`` run in order once its containers are up.

Each step is an engine action on a role's container (one of
``labctl.scenario.actions.action_registry.ACTIONS``: restart, kill, ... and a bounded ``wait``)
or a check that must hold at that point. A step is bounded
by its own timeout and the scenario's deadline. The first step that fails (a check) or
errs (the engine refused an action, a wait ran out) stops the timeline: the later steps
are reported as not run and the scenario fails (a check) or errs (an action).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from labctl.checks import evaluate as checkmod
from labctl.errors import LabctlError
from labctl.report.results import StepResult
from labctl.runtime.engine import Container
from labctl.scenario.actions.step_action import StepFailed
from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.model import StepSpec

if TYPE_CHECKING:
    from labctl.runner.scenario_run import ScenarioRun

__all__ = ["StepFailed", "Timeline"]


class Timeline:
    """Runs ``scenario.steps`` against a started ``ScenarioRun``; it is the ``Stage`` the
    step actions act on."""

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
            observed = ACTIONS[step.action].act(self, step, deadline)
        except LabctlError as e:
            return StepResult(step.name, step.action, "error", message=str(e))
        return StepResult(step.name, step.action, "passed", observed=observed)

    # ---------------------------------------------------------------- Stage

    def clock(self) -> float:
        return self.ctx.clock()

    def check_cancel(self) -> None:
        self.ctx.check_cancel()

    def not_started(self, role: str) -> bool:
        return role in self.run.roster.not_started

    def start_later(self, role: str) -> str:
        return self.run.start_later(role)

    def container(self, step: StepSpec) -> Container:
        c = self.run.roster.get(step.container)
        if step.container in self.run.roster.not_started:
            raise StepFailed(f"{step.action} {step.container}: it has start: false and no step started it yet")
        if c is None:
            why = self.run.roster.refused.get(step.container) or "it was never started"
            raise StepFailed(f"{step.action} {step.container}: the container did not run ({why})")
        return c

    def again(self, role: str, c: Container) -> None:
        """Start ``role`` again; its next lines are a new run (``run`` on its events), also
        for an image that prints no ``start`` event."""
        c.output.new_run()
        c.start()
