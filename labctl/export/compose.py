"""Render a scenario as an equivalent Compose-spec file (``labctl compose SCENARIO``).

The output has no ``version:`` key, so both docker-compose 1.29 and compose v2 read it.
What compose cannot express (event/output start conditions, checks, per-run temp
directories, ``start: false``, the ``steps:`` timeline) is kept as comments, so the file
stays honest about what it leaves out; each step names the compose command that does it
by hand.
"""

from __future__ import annotations

import os

from typing import Any

import yaml

from labctl.images import platforms
from labctl.runtime.labels import labels_for
from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.actions.go import export_args
from labctl.scenario.model import (
    WORKLOAD_IMAGE_REPO, ContainerSpec, Scenario, StepSpec, VolumeSpec, linked_container,
)

# `:latest` unless LABCTL_SHMLAB_IMAGE names a build (what `labctl build` prints): compose
# substitutes it, v1.29 and v2 alike, so a file can pin the exact image it was tested with.
IMAGE_VARIABLE = "LABCTL_SHMLAB_IMAGE"
DEFAULT_IMAGE = f"${{{IMAGE_VARIABLE}:-{WORKLOAD_IMAGE_REPO}:latest}}"


def platform_variable(platform: str) -> str:
    """The variable naming the workload image of ``platform``: LABCTL_SHMLAB_IMAGE_ARM64..."""
    return f"{IMAGE_VARIABLE}_{platforms.parse(platform).suffix.upper()}"


def platform_image(platform: str) -> str:
    """A container's image on ``platform``: ``$LABCTL_SHMLAB_IMAGE_<SUFFIX>``, by default the
    ``:latest-<suffix>`` tag that ``labctl build --platform`` moves."""
    return f"${{{platform_variable(platform)}:-{WORKLOAD_IMAGE_REPO}:latest-{platforms.parse(platform).suffix}}}"


# What labctl enforces on every container it starts (labctl.runner.plan.WORKLOAD_USER and
# the RunSpec defaults; a unit test keeps them equal), rendered so the compose file
# behaves like the lab.
WORKLOAD_USER = "65534:65534"
PIDS_LIMIT = 64
MEM_LIMIT = "256m"
# Event-gated starts: shmlab leaves ROLE.EVENT files here (SHMLAB_EVENT_DIR) and the donor's
# healthcheck tests them, so `after: {writer: attached}` becomes service_healthy.
EVENT_DIR = "/run/labctl-events"
HEALTH = {"interval": "250ms", "timeout": "2s", "retries": 240}
PREP_SERVICE = "labctl-prep"


def _labels(scenario: Scenario, role: str, user: dict[str, str] | None = None) -> dict[str, str]:
    # No owner pid/host: the file outlives this process, its objects are not stale debris.
    return labels_for("compose", scenario.name, role, user, owner=False)


def _link(mode: str) -> str:
    """``container:X`` (docker) -> ``service:X`` (compose)."""
    donor = linked_container(mode)
    return "service:" + donor if donor is not None else mode


def _role(c: ContainerSpec) -> str:
    """The role shmlab names its events with: ``--role NAME`` or the command."""
    args = [str(a) for a in c.args]
    if "--role" in args[:-1]:
        return args[args.index("--role") + 1]
    return str(c.workload)


def _gated(scenario: Scenario) -> dict[str, list[str]]:
    """Workload containers others wait on for an event -> those events (first use order)."""
    workloads = {c.name for c in scenario.containers if c.workload is not None}
    gated: dict[str, list[str]] = {}
    for c in scenario.containers:
        for a in c.after:
            if a.condition == "event" and a.container in workloads:
                events = gated.setdefault(a.container, [])
                if str(a.value) not in events:
                    events.append(str(a.value))
    return gated


def _prep_volumes(scenario: Scenario) -> list[str]:
    """Named volumes a non-root workload writes to: opened (1777) first, as labctl does."""
    disk = {v.name for v in scenario.volumes if v.type in ("volume", "tempdir")}
    used = []
    for c in scenario.containers:
        for m in c.mounts:
            if not m.tmpfs and m.source in disk and m.source not in used:
                used.append(m.source)
    return used


def _prep_service(scenario: Scenario, image: str, names: list[str]) -> dict[str, Any]:
    return {
        "image": image,
        "command": ["prep", "--chmod", "1777", *[f"/v/{n}" for n in names]],
        "user": "0:0",  # the volume's owner: chmod needs no capability
        "volumes": [f"{n}:/v/{n}" for n in names],
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "labels": _labels(scenario, PREP_SERVICE),
    }


def _service(scenario: Scenario, c: ContainerSpec, image: str, volumes: dict[str, VolumeSpec],
             gated: dict[str, list[str]], prep: list[str]) -> tuple[dict[str, Any], list[str]]:
    """One service and the comments that go above it."""
    notes: list[str] = []
    svc: dict[str, Any] = {}
    if c.workload is not None:
        svc["image"] = image
        if c.platform is not None:
            svc["image"] = platform_image(c.platform)
            notes.append(f"{c.name} runs on {c.platform}: `labctl build --platform {c.platform}` makes its image")
        svc["command"] = [c.workload, *export_args(c.args)]
    else:
        svc["image"] = c.image
        if c.entrypoint is not None:
            svc["entrypoint"] = list(c.entrypoint)
        if c.command is not None:
            svc["command"] = list(c.command)
    if c.platform is not None:
        svc["platform"] = c.platform
    svc["ipc"] = _link(c.ipc)
    depends: dict[str, dict[str, str]] = {}
    for a in c.after:
        if a.condition == "exited":
            # Compose only knows "completed successfully"; labctl accepts any exit status.
            depends[a.container] = {"condition": "service_completed_successfully"}
            notes.append(f"labctl starts {c.name} once {a.container} exited (any status)")
        elif a.condition == "event" and a.container in gated:
            depends[a.container] = {"condition": "service_healthy"}
            notes.append(f"{c.name} starts once {a.container} printed the event '{a.value}' "
                         f"(its healthcheck tests the marker shmlab leaves in {EVENT_DIR})")
        else:
            depends[a.container] = {"condition": "service_started"}
            if a.condition == "event":
                notes.append(f"labctl starts {c.name} once {a.container} printed the event '{a.value}'; "
                             f"compose only waits for it to start ({a.container} is not a workload)")
            elif a.condition == "output":
                notes.append(f"labctl starts {c.name} once a line of {a.container} matched /{a.value}/; "
                             "compose only waits for it to start")
    for donor in c.links.values():
        if donor not in depends:
            depends[donor] = {"condition": "service_started"}
    if prep and any(m.source in prep for m in c.mounts if not m.tmpfs):
        depends[PREP_SERVICE] = {"condition": "service_completed_successfully"}
    if depends:
        svc["depends_on"] = depends
    if c.name in gated:
        markers = [f"{EVENT_DIR}/{_role(c)}.{event}" for event in gated[c.name]]
        # `prep --chmod` of the markers fails (exit 20) until every one exists: a test that
        # needs no shell in the scratch image, run as the service's own user.
        svc["healthcheck"] = {"test": ["CMD", "/shmlab", "prep", "--chmod", "0644", *markers], **HEALTH}
    mounts = []
    for m in c.mounts:
        if m.tmpfs or m.source is None:
            continue
        v = volumes.get(m.source)
        src = m.source
        if v is not None and v.type == "hostdir" and v.path is not None:
            src = v.path if v.path.startswith(("/", "./", "../")) else "./" + v.path
        mounts.append(f"{src}:{m.target}" + (":ro" if m.read_only else ""))
    if mounts:
        svc["volumes"] = mounts
    tmpfs = [m.target + (":" + ",".join(m.options) if m.options else "") for m in c.mounts if m.tmpfs]
    if c.name in gated:
        tmpfs.append(EVENT_DIR)
    if tmpfs:
        svc["tmpfs"] = tmpfs
    if c.user is not None:
        svc["user"] = c.user
    elif c.workload is not None:
        svc["user"] = WORKLOAD_USER
    svc["pids_limit"] = PIDS_LIMIT
    svc["mem_limit"] = str(getattr(c, "memory", None) or MEM_LIMIT)
    if c.shm_size is not None:
        svc["shm_size"] = c.shm_size
    if c.sysctls:
        svc["sysctls"] = dict(c.sysctls)
    env = dict(c.env)
    if c.name in gated:
        env["SHMLAB_EVENT_DIR"] = EVENT_DIR
    if env:
        svc["environment"] = env
    if c.memory_swap is not None:
        svc["memswap_limit"] = c.memory_swap
    if c.restart != "no":
        svc["restart"] = c.restart
    if not c.start:
        notes.append(f"labctl creates {c.name} but starts it only in a step (start: false); compose starts it "
                     f"with the others (`docker compose up --no-start {c.name}`, then `docker compose start {c.name}`)")
    svc["network_mode"] = _link(c.network)
    if c.pid is not None:
        svc["pid"] = _link(c.pid)
    svc["read_only"] = c.read_only
    if c.privileged:
        svc["privileged"] = True
    else:
        svc["cap_drop"] = ["ALL"]
    if c.cap_add:
        svc["cap_add"] = list(c.cap_add)
    if c.devices:
        svc["devices"] = list(c.devices)
    from labctl.export.hardening import compose_security

    svc["security_opt"], extra = compose_security(c, os.path.dirname(os.path.abspath(scenario.file)))
    if "runtime" in extra:
        svc["runtime"] = extra["runtime"]
    if "userns_mode" in extra:
        svc["userns_mode"] = extra["userns_mode"]
    if "tmpfs_devshm" in extra:
        svc["tmpfs"] = [*svc.get("tmpfs", []), extra["tmpfs_devshm"]]
        notes.append(f"{c.name} gets a /dev/shm of its own ({extra['tmpfs_devshm']}), as labctl's shm_options do")
    svc["labels"] = _labels(scenario, c.name, dict(c.labels))
    return svc, notes


def _volume(scenario: Scenario, v: VolumeSpec) -> tuple[dict[str, Any], list[str]]:
    body: dict[str, Any] = {"labels": _labels(scenario, f"volume:{v.name}")}
    notes: list[str] = []
    if v.type == "tmpfs-volume":
        opts = {"type": "tmpfs", "device": "tmpfs"}
        opts["o"] = "mode=1777" + (f",size={v.size}" if v.size is not None else "")
        body = {"driver_opts": opts, **body}
    elif v.type == "tempdir":
        notes.append("labctl uses a per-run host temp directory here; compose uses a named volume")
    return body, notes


def _dump(value: Any, indent: int) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    return [" " * indent + line for line in text.splitlines()]


def step_command(step: StepSpec) -> str:
    """A step as the compose command that does it by hand (checks and waits: what to look for)."""
    if step.action in ACTIONS:
        return ACTIONS[step.action].compose(step)
    return f"check: {step.name} ({step.check.kind if step.check else step.action})"


def render_compose(scenario: Scenario, *, image: str = DEFAULT_IMAGE) -> str:
    """A Compose-spec YAML equivalent to ``scenario`` (deterministic; checks only as comments).
    ScenarioErrors (exit 2, at the key) for a ``umask``: the Compose spec has none."""
    from labctl.errors import ScenarioErrors
    from labctl.scenario.security import engine_only_errors

    refused = engine_only_errors(scenario, "Compose", "(the Compose spec has no umask key, and Docker no "
                                                      "per-container umask: set it in the program, or run the "
                                                      "scenario with labctl on Podman)")
    if refused:
        raise ScenarioErrors(refused)
    lines = [
        f"# Generated by `labctl compose {scenario.file}` (scenario '{scenario.name}').",
        "# Compose-spec (no version: key): docker-compose 1.29 and docker compose v2 both read it.",
        f"# Workload services run {image}; build it first with `labctl build`"
        + (f" (or set {IMAGE_VARIABLE} to the image it prints)." if image == DEFAULT_IMAGE else "."),
        "services:",
    ]
    volumes = {v.name: v for v in scenario.volumes}
    gated = _gated(scenario)
    prep = _prep_volumes(scenario)
    if prep:
        lines.append(f"  # opens the named volumes to the workload user (uid {WORKLOAD_USER.split(':')[0]}), as labctl does")
        lines += _dump({PREP_SERVICE: _prep_service(scenario, image, prep)}, 2)
    for c in scenario.containers:
        svc, notes = _service(scenario, c, image, volumes, gated, prep)
        lines += [f"  # {n}" for n in notes]
        lines += _dump({c.name: svc}, 2)
    named = [v for v in scenario.volumes if v.type != "hostdir"]
    if named:
        lines.append("volumes:")
        for v in named:
            body, notes = _volume(scenario, v)
            lines += [f"  # {n}" for n in notes]
            lines += _dump({v.name: body}, 2)
    if scenario.steps:
        lines.append("# Steps are not rendered: compose has no timeline. `labctl run` carries them out in order;")
        lines.append("# by hand, after `docker compose up -d`:")
        lines += [f"#   {i}. {step_command(s)}" for i, s in enumerate(scenario.steps, 1)]
    if scenario.checks:
        lines.append("# Checks are not rendered; `labctl run` evaluates them:")
        lines += [f"#   - {ch.name} ({ch.kind})" for ch in scenario.checks]
    return "\n".join(lines) + "\n"
