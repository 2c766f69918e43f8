"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

INVALID = Path(__file__).resolve().parent / "data" / "invalid"
CI_DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def wait_until(predicate: Callable[[], bool], timeout: float, clock: Callable[[], float] = time.monotonic,
               pause: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed (a bounded wait on state,
    not a sleep standing in for an event); returns its last value."""
    deadline = clock() + timeout
    while True:
        if predicate():
            return True
        if clock() >= deadline:
            return False
        time.sleep(pause)


def expected_errors() -> dict[str, str]:
    """tests/data/invalid/expected.txt: invalid fixture name -> its exact first error line."""
    out = {}
    for line in (INVALID / "expected.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, first = line.split("\t", 1)
            out[name] = first
    return out


def ci_recipes() -> dict[str, tuple[str, str]]:
    """docs/ci.md's ``# recipe: NAME`` fenced blocks -> (language, text)."""
    found = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", CI_DOC.read_text(), re.S):
        m = re.match(r"# recipe: (\S+)\n", body)
        if m:
            found[m.group(1)] = (lang, body)
    return found


# The rootless Podman the integration tests run on: .ci/run creates this system user, gives it
# subuid/subgid ranges and starts its API service at /run/user/UID/podman/podman.sock.
ROOTLESS_USER = "labctl-rootless"


def rootless_podman() -> str | None:
    """The ``unix://`` URL of the rootless Podman API socket of ``ROOTLESS_USER`` (whether
    or not a service listens there), or ``$LABCTL_TEST_ROOTLESS_HOST`` when set; None when
    that user does not exist."""
    import os
    import pwd

    if os.environ.get("LABCTL_TEST_ROOTLESS_HOST"):
        return os.environ["LABCTL_TEST_ROOTLESS_HOST"]
    try:
        uid = pwd.getpwnam(ROOTLESS_USER).pw_uid
    except KeyError:
        return None
    return f"unix:///run/user/{uid}/podman/podman.sock"


# ==== the compose constructs a rendered file uses (the compose tests' v1 subset) ====

# Mappings whose keys are names the renderer makes up (services, volumes, labels...): their
# keys are not constructs, what is under them is.
_NAMED = {"services", "volumes", "networks", "labels", "environment", "depends_on", "ulimits", "extra_hosts"}
# Keys whose value is itself the construct (its kind: the part before ':' for `service:x`).
_VALUED = {"condition", "ipc", "pid", "network_mode", "type", "driver", "restart", "init", "privileged",
           "read_only", "stop_signal", "runtime", "platform", "userns_mode", "cgroup"}


def _volume_kind(spec: str) -> str:
    """A service's short-syntax volume: named or bind source, and its mode suffix."""
    parts = spec.split(":")
    source = "bind" if parts[0].startswith(("/", ".", "~", "$")) else "named"
    return source + (":" + parts[2] if len(parts) > 2 else "")


def compose_constructs(doc: object, path: str = "") -> set[str]:
    """The compose constructs a rendered file (parsed YAML) uses: every key path, with the
    renderer's own names as ``*`` and list items as ``[]``, and for the keys whose value
    selects a behaviour (``condition``, ``ipc``, ``type``, volume sources...) that value's
    kind. Two files with the same set exercise the same compose features."""
    found = {path} if path else set()
    name = path.rsplit(".", 1)[-1]
    parent = path.rsplit(".", 2)[-2] if path.count(".") >= 1 else ""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if str(key).startswith("x-"):
                continue
            segment = "*" if name in _NAMED else str(key)
            found |= compose_constructs(value, f"{path}.{segment}" if path else segment)
    elif isinstance(doc, list):
        for item in doc:
            if name == "volumes" and isinstance(item, str) and parent == "*":
                found.add(f"{path}.[]={_volume_kind(item)}")
            elif name == "security_opt" and isinstance(item, str):
                found.add(f"{path}.[]={item.replace('=', ':').split(':')[0]}")
            else:
                found |= compose_constructs(item, f"{path}.[]")
    elif name == "o" and parent == "driver_opts":  # mount options: which ones, not their values
        found |= {f"{path}={opt.split('=')[0]}" for opt in str(doc).split(",")}
    elif name in _VALUED or isinstance(doc, bool):
        value = str(doc).lower() if isinstance(doc, bool) else str(doc)
        found.add(f"{path}={value.split(':')[0] if name in ('ipc', 'pid', 'network_mode') else value}")
    return found


def covering_subset(constructs: dict[str, set[str]]) -> list[str]:
    """Greedy set cover: names (sorted) whose construct sets together hold every construct
    any of ``constructs`` holds; each step takes the name adding the most (ties: by name)."""
    missing = set().union(*constructs.values()) if constructs else set()
    chosen = []
    while missing:
        best = max(sorted(constructs), key=lambda n: len(constructs[n] & missing))
        chosen.append(best)
        missing -= constructs[best]
    return sorted(chosen)


def gated_starts(scenario) -> list[tuple[str, str, str]]:  # noqa: ANN001 - a Scenario
    """(dependent, donor, event) for each event condition the compose renderer gates (workload donors)."""
    workloads = {c.name for c in scenario.containers if c.workload is not None}
    return [(c.name, a.container, str(a.value)) for c in scenario.containers for a in c.after
            if a.condition == "event" and a.container in workloads]


def waits_on_a_failing_exit(scenario) -> bool:  # noqa: ANN001 - a Scenario
    """A container waits for another to exit, and the scenario expects that exit to be
    non-zero: compose has only service_completed_successfully, so `up` reports the expected
    failure as its own (pod-start-race: the reader's exit 10 is the lesson)."""
    awaited = {a.container for c in scenario.containers for a in c.after if a.condition == "exited"}
    return any(ch.kind == "exit" and ch.body.container in awaited and ch.body.codes and 0 not in ch.body.codes
               for ch in scenario.checks)


def library_compose_constructs(paths, runs: bool = False) -> dict[str, set[str]]:  # noqa: ANN001 - iterable of Paths
    """Scenario file -> the constructs of its ``labctl compose`` rendering (files the renderer
    refuses are left out), plus the
    branches of the compose library test it takes (``test:`` entries: an event-gated
    start whose order is checked, an ``up`` that may fail by design). ``runs``: also what
    makes one run under compose differ from another beyond its constructs: each workload
    it runs (``workload=``) and each event a start is gated on, with the workload that
    prints it (``gate=WORKLOAD:EVENT``: its healthcheck and the order check meet that
    event's own timing)."""
    import yaml

    from labctl import scenario as scen
    from labctl.export.compose import render_compose

    from labctl.errors import ScenarioErrors

    out = {}
    for path in paths:
        s = scen.load_file(str(path))
        try:
            rendered = render_compose(s)
        except ScenarioErrors:  # Compose cannot express it (e.g. umask): no rendering to cover
            continue
        found = compose_constructs(yaml.safe_load(rendered))
        if gated_starts(s):
            found.add("test:gated-event-start")
        if any(ch.kind == "refused" for ch in s.checks):
            found.add("test:up-fails-refused")
        if waits_on_a_failing_exit(s):
            found.add("test:up-fails-awaited-exit")
        if runs:
            workload = {c.name: c.workload for c in s.containers}
            found |= {f"workload={w}" for w in workload.values() if w}
            found |= {f"gate={workload[donor]}:{event}" for _, donor, event in gated_starts(s)}
        out[str(path)] = found
    return out


def library_in_image_constructs(paths) -> dict[str, set[str]]:  # noqa: ANN001 - iterable of Paths
    """Scenario file -> what can make its run by labctl *inside the labctl image* differ from
    a run by labctl on the host: each kind of need the machine is asked about (``need=``:
    a compiler, a platform, a runtime, an opt-in...: the image answers some differently,
    with a skip), each check kind and step action (``check=``, ``step=``: what labctl reads
    of the engine and the host, from a container), each volume type and mount form
    (``volume=``, ``mount=``: host paths are mapped through the engine when labctl runs in
    a container), each IPC mode (``ipc=``), a restart policy, and the layouts checks decode
    by (``layout=named``: built into labctl; ``layout=header``: from a C header, precomputed in
    the folder, as the image needs it). A mount names a scenario volume or is a tmpfs."""
    from labctl import scenario as scen
    from labctl.scenario.requirements import REGISTRY, Machine

    machine = Machine(engine="docker", arch="x86_64")
    out = {}
    for path in paths:
        s = scen.load_file(str(path))
        found = {f"need={kind}" for kind, req in REGISTRY.items() if req.needs(s, machine)}
        found |= {f"check={ch.kind}" for ch in s.all_checks()}
        found |= {f"step={st.action}" for st in s.steps}
        found |= {f"volume={v.type}" for v in s.volumes}
        for c in s.containers:
            found.add("ipc=" + c.ipc.split(":")[0])
            found |= {f"mount={'tmpfs' if m.tmpfs else 'volume'}{':ro' if m.read_only else ''}" for m in c.mounts}
            if c.restart != "no":
                found.add("restart")
        # a layout by name (built into labctl) or from a C header (precomputed in the folder)
        found |= {f"layout={'header' if ch.body.layout.source.endswith('.h') else 'named'}"
                  for ch in s.all_checks() if getattr(ch.body, "layout", None) is not None}
        out[str(path)] = found
    return out


def import_round_trip_constructs(paths) -> dict[str, set[str]]:  # noqa: ANN001 - iterable of Paths
    """Scenario file -> what ``labctl import compose`` reads in its ``labctl compose``
    rendering: the compose constructs (``compose_constructs``: the generated checks follow
    from these), plus each service's workload (``workload=`` its command's first word) and
    each event a service waits for (``event=`` the name its healthcheck probes)."""
    import yaml

    from labctl import scenario as scen
    from labctl.export.compose import render_compose

    out = {}
    for path in paths:
        doc = yaml.safe_load(render_compose(scen.load_file(str(path))))
        found = compose_constructs(doc)
        for service in doc["services"].values():
            probe = (service.get("healthcheck") or {}).get("test") or []
            if probe and "/run/labctl-events/" in str(probe[-1]):
                found.add("event=" + str(probe[-1]).rsplit(".", 1)[-1])
            if service.get("command"):
                found.add(f"workload={service['command'][0]}")
        out[str(path)] = found
    return out


def passing_run_all(calls: list[str]):  # noqa: ANN201 - a stand-in for labctl.runner.run_all
    """A fake ``runner.run_all`` for CLI unit tests: records ``run NAME...`` in ``calls``,
    reports every scenario passed through ``on_result``, returns the RunResult."""
    from labctl.report.results import RunResult, ScenarioResult

    def run_all(_e, scenarios, _image, **k):  # noqa: ANN001, ANN202
        calls.append("run " + " ".join(s.name for s in scenarios))
        res = [ScenarioResult(s.name, s.file, "passed") for s in scenarios]
        for r in res:
            k["on_result"](r)
        return RunResult(k["run_id"], res, 1.0)
    return run_all


def what_failed(proc: subprocess.CompletedProcess) -> str:
    """The scenarios of a JSON run that did not pass, each with its message and the checks
    that did not pass (expected, observed, message), then the end of stderr: what a CI log
    must show when the report itself is too long to print."""
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = []
    for s in report.get("scenarios", []):
        if s["status"] in ("passed", "skipped"):
            continue
        lines.append(f"{s['name']}: {s['status']} {s.get('message', '')}".rstrip())
        for c in s.get("checks", []):
            if c["status"] != "passed":
                lines.append(f"  {c['status']} {c['name']}: expected {c.get('expected')!r}, "
                             f"observed {c.get('observed')!r}; {c.get('message', '')}")
    return "\n".join(lines) + "\n" + proc.stderr[-3000:]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (``kill(pid, 0)``; one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
