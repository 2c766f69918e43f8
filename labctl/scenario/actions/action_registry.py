"""The one table of step actions. A new action is a module in this package plus one line here.

The order is the order of the action keys in the JSON Schema and in the handout.
"""

from __future__ import annotations

from labctl.scenario.actions import go, kill, pause, restart, start, stop, unpause, wait
from labctl.scenario.actions.step_action import StepAction

ACTIONS: dict[str, StepAction] = {a.name: a for a in (
    restart.ACTION,
    kill.ACTION,
    go.ACTION,
    stop.ACTION,
    start.ACTION,
    pause.ACTION,
    unpause.ACTION,
    wait.ACTION,
)}
