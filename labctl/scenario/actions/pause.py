"""The ``pause`` step: freeze every process of the container (the cgroup freezer)."""

from __future__ import annotations

from labctl.scenario.actions.step_action import plain_action

ACTION = plain_action("pause", "docker pause: freeze every process (cgroup freezer)",
                      lambda c: c.pause(), "paused")
