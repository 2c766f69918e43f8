"""The ``unpause`` step: thaw a paused container."""

from __future__ import annotations

from labctl.scenario.actions.step_action import plain_action

ACTION = plain_action("unpause", "docker unpause", lambda c: c.unpause(), "unpaused")
