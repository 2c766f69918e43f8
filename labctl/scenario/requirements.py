"""What a scenario needs of this machine and engine, and whether they have it.

One registry, one rule. A :class:`Requirement` says which :class:`Need` s a scenario has
of its kind (an opt-in flag, emulation for a foreign platform, an engine, a C compiler...)
and probes the :class:`Machine` for each: an :class:`Unmet` carries the reason, the one
command that enables it and, for a refusal, the full steps. :func:`triage` applies the rule
every command shares:

* a scenario found in a folder whose needs are unmet is *skipped* (a ``skipped`` result
  with the reason and the fix), and the run goes on;
* a scenario file named on the command line is *refused* before anything starts:
  :class:`Refused` (exit 2 for a missing opt-in, which is a usage matter with its
  ``FILE:LINE:COL``; exit 3 for what the machine or engine lacks, with the steps).

Adding a kind (an engine feature, a kernel setting) is one :class:`Requirement` passed to
:func:`register`: ``needs`` reads the scenario model, ``probe`` reads the :class:`Machine`;
``labctl run`` (and ``validate``, for the kinds that need no engine), the reports and the
summary's skip counts pick it up from the registry. (The pytest plugin reads only the
opt-ins, from the scenario itself.)

No engine import: what the engine says (its name, runtimes...) comes on the :class:`Machine`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import EXIT_ENVIRONMENT, EXIT_USAGE, LabctlError

if TYPE_CHECKING:
    from labctl.scenario.model import Pos, Scenario


# The opt-in flags (``run --allow-...``): what each allows. The CLI declares one flag each.
OPT_INS = {
    "allow-host-ipc": "ipc: host (the segment is created in the host's namespace)",
    "allow-host-paths": "bind mounts of host paths outside the scenario's folder",
    "allow-privileged": "privileged mode, added capabilities, host pid, networks or devices",
}


@dataclass(frozen=True)
class Machine:
    """What the probes read. ``engine``: the engine's name (``docker``/``podman``), ``""``
    before connecting (then only requirements with ``engine=False`` are probed);
    ``arch``: its uname architecture; ``local``: binfmt_misc of the engine's host is
    readable here (a unix socket, labctl not in a container); ``binfmt_dir``: where;
    ``allowed``: the opt-in flags given (``allow-host-ipc``); ``compiler``: labctl can
    compile workloads (False in the labctl image, which carries one prebuilt binary);
    ``runtimes``: the names of the OCI runtimes the engine offers (``Engine.oci_runtimes()``;
    empty: not asked, and then a scenario's ``runtime:`` is not judged); ``runtimes_gone``:
    (name, path) of those listed at a path missing on the engine's host; ``platform``: the
    run's ``--platform`` (workload containers that name none run on it), ``""``: none.
    ``address``: where the engine listens (a runtime's fix names the service beside it).
    ``rootless``: the engine runs as a non-root user (``engine_user``), its containers in that
    user's user namespace; ``cgroup``: the host's cgroup version (``v1``/``v2``);
    ``controllers``: the cgroup controllers the engine can limit or freeze containers with
    (None: all, a rootful engine). ``host_mqueue``: the engine host's /dev/mqueue is mounted
    (True when it cannot be read from here)."""

    engine: str = ""
    arch: str = ""
    local: bool = True
    binfmt_dir: Path = Path("/proc/sys/fs/binfmt_misc")
    allowed: frozenset[str] = frozenset()
    compiler: bool = True
    runtimes: frozenset[str] = frozenset()
    runtimes_gone: tuple[tuple[str, str], ...] = ()
    platform: str = ""
    address: str = ""
    rootless: bool = False
    cgroup: str = ""
    controllers: frozenset[str] | None = None
    engine_user: str = ""
    host_mqueue: bool = True


@dataclass(frozen=True)
class Need:
    """One thing a scenario needs: ``kind`` (a registry key), ``value`` (``linux/arm64``,
    ``allow-host-ipc``...), and where the file asks for it (key path, position)."""

    kind: str
    value: str
    path: str = ""
    pos: Pos | None = None


REASON_FORM = "reason"  # reason (detail); to enable: fix
DETAIL_FORM = "detail"  # detail; fix: fix


@dataclass(frozen=True)
class Unmet:
    """A need this machine does not meet. ``reason``: a short category the summary counts
    by (``needs linux/arm64 emulation``); ``detail``: why, as a sentence; ``fix``: the one
    command that enables it; ``steps``: every command, for a refusal; ``exit_code``:
    2 (usage: an opt-in) or 3 (environment); ``form``: the skip message's wording,
    ``REASON_FORM`` or ``DETAIL_FORM`` (for a kind whose detail names what is needed)."""

    need: Need
    reason: str
    detail: str
    fix: str
    steps: tuple[str, ...] = ()
    exit_code: int = EXIT_ENVIRONMENT
    form: str = REASON_FORM

    @property
    def message(self) -> str:
        """The skip message: ``reason (detail); to enable: fix``, or with ``DETAIL_FORM``
        ``detail; fix: fix``."""
        if self.form == DETAIL_FORM:
            return f"{self.detail}; fix: {self.fix}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.reason}{detail}; to enable: {self.fix}"


@dataclass(frozen=True)
class Requirement:
    """A kind of need: ``needs(scenario, machine)`` lists a scenario's needs of this kind;
    ``probe(need, machine)`` returns an Unmet or None. ``engine``: the probe needs what the
    engine says (probed only after connecting)."""

    kind: str
    needs: Callable[[Scenario, Machine], list[Need]]
    probe: Callable[[Need, Machine], Unmet | None]
    engine: bool = True


REGISTRY: dict[str, Requirement] = {}


def register(req: Requirement) -> Requirement:
    """Add a kind to the registry (one per ``kind``; the last registration wins)."""
    REGISTRY[req.kind] = req
    return req


def unmet(scenario: Scenario, machine: Machine, *, engine: bool | None = None) -> list[Unmet]:
    """Every unmet need of ``scenario``, in registry order; ``engine`` restricts to the
    kinds that need (True) or do not need (False) the engine."""
    out: list[Unmet] = []
    for req in REGISTRY.values():
        if engine is not None and req.engine != engine:
            continue
        for need in req.needs(scenario, machine):
            found = req.probe(need, machine)
            if found is not None and all(found.message != u.message for u in out):
                out.append(found)
    return out


class Refused(LabctlError):
    """A scenario named on the command line needs what this machine lacks: nothing was
    started. Exit 2 when only opt-ins are missing (a usage matter), else 3."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Triage:
    """``runnable`` scenarios and the ``skipped`` ones with their unmet needs."""

    runnable: list[Scenario] = field(default_factory=list)
    skipped: list[tuple[Scenario, list[Unmet]]] = field(default_factory=list)


def explicit_files(paths: Sequence[str]) -> set[str]:
    """The files named on the command line (normalised), as opposed to folders."""
    return {os.path.normpath(p) for p in paths if os.path.isfile(p)}


def triage(scenarios: Iterable[Scenario], machine: Machine, explicit: set[str], *,
           engine: bool | None = None) -> Triage:
    """Split ``scenarios`` by what ``machine`` meets. Raises :class:`Refused` (nothing has
    started) naming every unmet need of the scenarios in ``explicit`` (files named on the
    command line); the others with unmet needs are skipped."""
    out = Triage()
    refusals: list[tuple[Scenario, list[Unmet]]] = []
    for s in scenarios:
        missing = unmet(s, machine, engine=engine)
        if not missing:
            out.runnable.append(s)
        elif os.path.normpath(s.file) in explicit:
            refusals.append((s, missing))
        else:
            out.skipped.append((s, missing))
    if refusals:
        raise refusal(refusals)
    return out


def refusal(refusals: list[tuple[Scenario, list[Unmet]]]) -> LabctlError:
    """One Refused for several scenarios: opt-ins as ``FILE:LINE:COL: key: message`` lines
    (exit 2 when that is all), the rest with their steps (exit 3)."""
    from labctl.errors import ScenarioError, ScenarioErrors

    lines: list[str] = []
    usage: list[ScenarioError] = []
    code = EXIT_USAGE
    for s, missing in refusals:
        for u in missing:
            if u.exit_code == EXIT_USAGE:
                pos = u.need.pos
                usage.append(ScenarioError(pos.file if pos else s.file, pos.line if pos else None, pos.col if pos else None,
                                           u.need.path, f"{u.reason} ({u.detail}); refused without it"))
                lines.append(usage[-1].message)
                continue
            code = EXIT_ENVIRONMENT
            lines.append(f"{u.detail} (scenario {s.name}, {s.file})")
            if u.steps:
                lines.append("Enable it (as root), then run again:")
                lines.extend(f"  {step}" for step in u.steps)
            else:
                lines.append(f"To enable it: {u.fix}")
    if code == EXIT_USAGE:  # only opt-ins: located errors, as the loader gives them
        return ScenarioErrors(usage)  # type: ignore[return-value]
    return Refused("\n".join(lines), code)


def skip_message(missing: list[Unmet]) -> str:
    """The message of a skipped result: each unmet need with its fix."""
    return "; ".join(dict.fromkeys(u.message for u in missing))


def skip_reason(missing: list[Unmet]) -> str:
    """The short reason a skip is counted under (the first unmet need's)."""
    return missing[0].reason if missing else ""


# ==== the kinds ====


def _opt_in_needs(s: Scenario, _m: Machine) -> list[Need]:
    return [Need("opt-in", flag, path, pos) for flag, path, pos in s.requires]


def _opt_in_probe(need: Need, m: Machine) -> Unmet | None:
    if need.value in m.allowed:
        return None
    return Unmet(need, f"needs --{need.value}", OPT_INS.get(need.value, need.value),
                 f"labctl run --{need.value} {need.pos.file if need.pos else ''}".rstrip(), exit_code=EXIT_USAGE)


def _platform_needs(s: Scenario, m: Machine) -> list[Need]:
    return [Need("platform", c.platform, f"containers.{c.name}.platform")
            for c in s.containers if c.platform and c.workload]


def _platform_probe(need: Need, m: Machine) -> Unmet | None:
    from labctl.images import platforms

    plat = platforms.parse(need.value)
    if platforms.is_native(plat, m.arch) or not m.local:
        return None  # a remote engine's binfmt_misc is not readable here: its start says
    state = platforms.emulation_state(plat, m.binfmt_dir)
    if state.ok:
        return None
    steps = (state.fix,) if state.fix else tuple(platforms.install_steps(plat, m.binfmt_dir))
    return Unmet(need, f"needs {plat.name} emulation",
                 f"{plat.name} needs emulation on this {m.arch} engine, and it is not set up: {state.reason}",
                 steps[0] + (" (as root)" if state.fix else " (as root; registers qemu in binfmt_misc)"), steps)


def _engine_needs(s: Scenario, _m: Machine) -> list[Need]:
    return [Need("engine", ",".join(s.engines), "engines")] if s.engines else []


def _engine_probe(need: Need, m: Machine) -> Unmet | None:
    wanted = need.value.split(",")
    if m.engine in wanted:
        return None
    return Unmet(need, f"only on {', '.join(wanted)}",
                 f"the scenario runs only on {' or '.join(wanted)}, and this run is on {m.engine}",
                 f"labctl run --engine {wanted[0]}")


def _engine_only_needs(s: Scenario, _m: Machine) -> list[Need]:
    return [Need("engine-only", key, path, pos) for key, path, pos in s.engine_only]


def _engine_only_probe(need: Need, m: Machine) -> Unmet | None:
    from labctl.scenario.security import ENGINE_ONLY

    engines, why = ENGINE_ONLY[need.value]
    if m.engine in engines:
        return None
    where = f"{need.pos.file}:{need.pos.line}:{need.pos.col}: " if need.pos else ""
    return Unmet(need, f"{need.value} needs {' or '.join(engines)}",
                 f"{where}{need.path}: {why}; this run is on {m.engine}",
                 f"labctl run --engine {engines[0]}" + (f" {need.pos.file}" if need.pos else ""))


def _compiler_needs(s: Scenario, m: Machine) -> list[Need]:
    from labctl.images import platforms

    native = platforms.of_engine(m.arch).name if m.arch else ""
    out = [Need("compiler", c.platform, f"containers.{c.name}.platform")
           for c in s.containers if c.platform and c.workload and c.platform != native]
    from labctl.images import examples

    out += [Need("compiler", f"labctl/{name}", "image")
            for name in examples.referenced(c.image for c in s.containers if c.image)]
    return out


def _compiler_probe(need: Need, m: Machine) -> Unmet | None:
    if m.compiler:
        return None
    what = f"the {need.value} workload image" if "/" in need.value and not need.value.startswith("labctl/") \
        else f"the image {need.value}"
    return Unmet(need, "needs a C compiler",
                 f"{what} is built from source, and this labctl (the labctl image) carries no compiler",
                 "run it with labctl installed by pip (pip install -e . in a checkout, then labctl run)")


# What emulation (qemu-user through binfmt_misc) cannot show, container by container: the
# lesson needs the program's own instructions on the engine's CPU.
_NOT_UNDER_EMULATION = {
    "runsc": "gVisor runs the program under its own kernel, which does not consult the host's binfmt_misc, "
             "so an emulated binary does not start in the sandbox",
    "exec-map": "qemu-user maps the guest's code without PROT_EXEC on the host, so a noexec /dev/shm refuses "
                "no executable mapping and the lesson cannot be seen",
}


def _emulated_needs(s: Scenario, m: Machine) -> list[Need]:
    from labctl.images import platforms

    out: list[Need] = []
    for c in s.containers:
        plat = c.platform or (m.platform if c.workload else "")
        if not plat or not m.arch or platforms.is_native(platforms.parse(plat), m.arch):
            continue
        if c.runtime == "runsc":
            out.append(Need("native", "runsc", f"containers.{c.name}.runtime"))
        if c.workload and "--exec" in c.args:
            out.append(Need("native", "exec-map", f"containers.{c.name}.args"))
    return out


def _emulated_probe(need: Need, m: Machine) -> Unmet | None:
    return Unmet(need, "needs the engine's own platform", _NOT_UNDER_EMULATION[need.value],
                 "labctl run without --platform (on an engine of that architecture)")


def _runtime_needs(s: Scenario, _m: Machine) -> list[Need]:
    return [Need("runtime", c.runtime, f"containers.{c.name}.runtime") for c in s.containers if c.runtime]


def _runtime_probe(need: Need, m: Machine) -> Unmet | None:
    from labctl.runtime.oci import availability

    if not m.runtimes:
        return None  # not asked (no engine): its container start says
    a = availability(need.value, m.engine, dict.fromkeys(m.runtimes, ""), address=m.address or None,
                     gone=dict(m.runtimes_gone))
    if a.ok:
        return None
    return Unmet(need, f"needs the {need.value} runtime",
                 f"runtime {need.value} is not available on {m.engine}: {a.reason}", a.fix, a.steps, form=DETAIL_FORM)


def _lsm_needs(s: Scenario, _m: Machine) -> list[Need]:
    from labctl.scenario.security import needs_lsm

    first: dict[str, str] = {}  # module -> the first container whose options need it
    for c in s.containers:
        for lsm in needs_lsm(c.security_opt):
            first.setdefault(lsm, c.name)
    return [Need("lsm", lsm, f"containers.{first[lsm]}.security_opt") for lsm in sorted(first)]


def _lsm_probe(need: Need, _m: Machine) -> Unmet | None:
    from labctl.scenario import security

    lsm = need.value
    if security.lsm_enabled(lsm):
        return None
    # the engine accepts the option on any host; only an enforcing kernel gives it a meaning
    return Unmet(need, f"needs {lsm} enforced",
                 f"needs {lsm} enforced by the host kernel (a {'label=' if lsm == 'selinux' else 'apparmor='} "
                 f"security option), and this host's kernel does not enforce {lsm}: the engine would accept the "
                 "option and nothing would be enforced",
                 f"run it on a host with {lsm} enabled (the option is still validated and exported)", form=DETAIL_FORM)


def _userns_needs(s: Scenario, _m: Machine) -> list[Need]:
    return [Need("userns", c.userns, f"containers.{c.name}.userns") for c in s.containers if c.userns]


def _userns_probe(need: Need, m: Machine) -> Unmet | None:
    from labctl.scenario.security import USERNS_ENGINES

    wanted = USERNS_ENGINES[need.value]
    if m.engine in wanted:
        return None
    return Unmet(need, f"only on {', '.join(wanted)}",
                 f"userns {need.value} ({need.path.rsplit('.', 1)[0]}) is not a per-container mode on {m.engine} "
                 f"(only on {', '.join(wanted)})", f"run it with --engine {wanted[0]}", form=DETAIL_FORM)


register(Requirement("opt-in", _opt_in_needs, _opt_in_probe, engine=False))
register(Requirement("engine", _engine_needs, _engine_probe))
register(Requirement("engine-only", _engine_only_needs, _engine_only_probe))
register(Requirement("compiler", _compiler_needs, _compiler_probe))
register(Requirement("platform", _platform_needs, _platform_probe))
register(Requirement("native", _emulated_needs, _emulated_probe))
register(Requirement("runtime", _runtime_needs, _runtime_probe))
register(Requirement("lsm", _lsm_needs, _lsm_probe))
register(Requirement("userns", _userns_needs, _userns_probe))

from labctl.scenario import privilege  # noqa: E402,F401 - registers the "privilege" kind (rootless engines)
