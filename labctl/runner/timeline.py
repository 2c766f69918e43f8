"""The timeline: a scenario's ``steps:`` run in order once its containers are up.

Each step is an engine action on a role's container (one of
``labctl.scenario.actions.action_registry.ACTIONS``: restart, kill, ... and a bounded ``wait``)
or a check that must hold at that point. A step is bounded
by its own timeout and the scenario's deadline. The first step that fails (a check) or
errs (the engine refused an action, a wait ran out) stops the timeline: the later steps
are reported as not run and the scenario fails (a check) or errs (an action).
"""

from __future__ import annotations

import time
from typing import Callable

from labctl.checks import evaluate as checkmod
from labctl.errors import LabctlError
from labctl.report.results import StepResult
from labctl.runner.context import RunContext
from labctl.runtime.engine import Container
from labctl.scenario.actions.step_action import StepFailed
from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.model import StepSpec

__all__ = ["StepFailed", "Timeline"]


class Timeline:
    """Runs ``ctx.scenario.steps`` once the containers are up; it is the ``Stage`` the step
    actions act on. It is handed the operations it uses:

    observation  what a check step looks at (``checks.Observation``: the run)
    started      role -> its container once created (None: never created)
    refusal      role -> the engine's reason when it refused to start it (None: it did not)
    waiting      role -> True while it has ``start: false`` and no step started it yet
    start_later  a ``start`` step's first start of a role; returns what was observed
    attach       attaches a ``since: step`` check's tally as its step begins
    """

    def __init__(self, ctx: RunContext, observation: checkmod.Observation, *,
                 started: Callable[[str], Container | None], refusal: Callable[[str], str | None],
                 waiting: Callable[[str], bool], start_later: Callable[[str], str],
                 attach: Callable[[object], None], sleep: Callable[[float], None] | None = None) -> None:
        self.ctx = ctx
        self.observation = observation
        self.started = started
        self.refusal = refusal
        self.waiting = waiting
        self._start_later = start_later
        self.attach = attach
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

    def _one(self, step: StepSpec, start: float) -> StepResult:
        deadline = min(self.ctx.deadline, start + step.timeout)
        if step.check is not None:
            if getattr(step.check.body, "since_step", False):
                self.attach(step.check.body)
            r = checkmod.evaluate(step.check, self.observation, clock=self.ctx.clock, hard_deadline=self.ctx.deadline)
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
        return self.waiting(role)

    def start_later(self, role: str) -> str:
        return self._start_later(role)

    def container(self, step: StepSpec) -> Container:
        c = self.started(step.container)
        if self.waiting(step.container):
            raise StepFailed(f"{step.action} {step.container}: it has start: false and no step started it yet")
        if c is None:
            why = self.refusal(step.container) or "it was never started"
            raise StepFailed(f"{step.action} {step.container}: the container did not run ({why})")
        return c

    def again(self, role: str, c: Container) -> None:
        """Start ``role`` again; its next lines are a new run (``run`` on its events), also
        for an image that prints no ``start`` event."""
        c.output.new_run()
        c.start()
