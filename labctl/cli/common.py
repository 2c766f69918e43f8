"""What several commands share: stderr output, progress, loading and filtering scenarios,
the opt-in refusal, and the two engine entry points (replaced by fakes in the unit tests)."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from labctl.cli.params import OPT_INS
from labctl.errors import ScenarioError, ScenarioErrors

if TYPE_CHECKING:  # the model and results are imported lazily at run time (fast --help)
    from labctl.report.results import ScenarioResult
    from labctl.scenario.model import Pos, Scenario


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask; os.cpu_count() elsewhere):
    ``run``'s default ``--jobs``, as test runners (pytest-xdist ``-n auto``) choose theirs."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def err(msg: str) -> None:
    """One line on stderr (logs and errors; data goes to stdout)."""
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.stderr.flush()


def raw_err(msg: str) -> None:
    """A line on fd 2 without Python's buffered stderr (safe inside a signal handler)."""
    try:
        os.write(2, (msg + "\n").encode())
    except OSError:
        pass


class Progress:
    """Progress lines on stderr: rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self._lock = threading.Lock()
        self._live = False

    def status(self, msg: str) -> None:
        if self.quiet or not self.tty:
            return
        with self._lock:
            sys.stderr.write("\r\x1b[K" + msg[:150])
            sys.stderr.flush()
            self._live = True

    def line(self, msg: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._live:
                sys.stderr.write("\r\x1b[K")
                self._live = False
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()


def load(paths: Sequence[str], say: Callable[[str], None] | None = err) -> list[Scenario]:
    """The scenarios of files and folders; ScenarioErrors if any is bad. With no path:
    ``./scenarios`` if there is one, else the built-in library, and ``say`` tells which."""
    from labctl import scenario as scen
    from labctl.images.library import default_paths

    if paths:
        return scen.load_all(list(paths))
    chosen = default_paths()
    if say is not None:
        say(chosen.note)
    return scen.load_all(chosen.paths)


def select(scenarios: Iterable[Scenario], tags: Sequence[str], substrings: Sequence[str]) -> list[Scenario]:
    """``--tag`` (any of them) and ``-k`` (name contains any of them) filters."""
    return [s for s in scenarios
            if (not tags or set(tags) & set(s.tags)) and (not substrings or any(k in s.name for k in substrings))]


def missing_opt_ins(scenario: Scenario, allowed: dict[str, bool]) -> list[tuple[str, str, Pos]]:
    """(flag, key path, position) of each opt-in the scenario needs and ``allowed`` lacks;
    ``allowed`` maps ``allow_host_ipc``-style parameter names to the flags given."""
    return [(flag, path, pos) for flag, path, pos in scenario.requires
            if not allowed.get(flag.replace("-", "_"), False)]


def machine(allowed: dict[str, bool], engine=None, arch: bool = True, runtimes: bool = False):
    """The ``requirements.Machine`` the probes read: the opt-ins given (``allowed``: parameter
    names such as ``allow_host_ipc`` -> bool) and, with an engine, its name, architecture,
    whether its host's binfmt_misc is readable here, whether labctl can compile, and whether the
    engine is rootless with which cgroup controllers (``Engine.privileges``). ``arch``: ask the engine its architecture (only scenarios
    that name a platform or an example image need it); ``runtimes``: ask it its OCI runtimes
    (``Engine.oci_runtimes()``; only scenarios that name a runtime need them). EngineError."""
    from labctl.images import build
    from labctl.runtime.hostpaths import in_container
    from labctl.scenario import requirements

    flags = frozenset(f for f in OPT_INS if allowed.get(f.replace("-", "_"), False))
    if engine is None:
        return requirements.Machine(allowed=flags)
    address = str(getattr(engine, "address", "unix://"))
    from labctl.runtime.engine import Privileges

    priv = engine.privileges() if hasattr(engine, "privileges") else Privileges()
    # in a container (the labctl image) /proc/sys/fs/binfmt_misc is not the engine host's
    local = address.startswith("unix://") and not in_container()
    registered = engine.oci_runtimes() if runtimes else {}
    # Docker lists what daemon.json names, installed or not (a runtime removed after
    # dockerd read it stays listed): a binary missing on a host labctl sees is not offered
    gone = tuple(sorted((name, path) for name, path in registered.items()
                        if engine.name == "docker" and local and path.startswith("/") and not os.path.exists(path)))
    return requirements.Machine(
        engine=engine.name, arch=engine.architecture() if arch else "", allowed=flags, binfmt_dir=binfmt_dir(),
        platform=str(allowed.get("platform") or ""), local=local, compiler=build.prebuilt_binary() is None,
        runtimes=frozenset(registered), runtimes_gone=gone, address=address,
        rootless=priv.rootless, cgroup=priv.cgroup, controllers=priv.controllers, engine_user=priv.user,
        host_mqueue=not (local and priv.rootless) or os.path.ismount(MQUEUE_DIR))


MQUEUE_DIR = "/dev/mqueue"  # where a rootless engine finds the host's mqueue file system


def skipped_results(triage) -> list[ScenarioResult]:
    """The skipped results of a ``requirements.Triage``: reason and fix in each."""
    from labctl.report.results import ScenarioResult
    from labctl.scenario import requirements

    return [ScenarioResult(s.name, s.file, "skipped", message=requirements.skip_message(missing), tags=s.tags,
                           reason=requirements.skip_reason(missing))
            for s, missing in triage.skipped]


def refuse_opt_ins(scenarios: list[Scenario], allowed: dict[str, bool], paths: Sequence[str], *,
                   skip_discovered: bool = False) -> tuple[list[Scenario], list[ScenarioResult]]:
    """Scenarios that need an opt-in the user did not give: a file named on the command line
    is refused (exit 2, nothing started); one found in a folder is skipped with the reason,
    so a library run does not stop on them. Returns (runnable, skipped results).
    Without ``skip_discovered`` every such scenario is refused."""
    from labctl.scenario import requirements

    explicit = requirements.explicit_files(paths) if skip_discovered else {os.path.normpath(s.file)
                                                                            for s in scenarios}
    found = requirements.triage(scenarios, machine(allowed), explicit, engine=False)
    return found.runnable, skipped_results(found)


def refuse_unmet(engines: Sequence, scenarios: list[Scenario], allowed: dict[str, bool],
                 paths: Sequence[str]) -> dict[str, tuple[list[Scenario], list[ScenarioResult]]]:
    """What each connected engine lacks for ``scenarios`` (emulation, an OCI runtime, ``engines:``,
    an enforcing security module...), before anything is built or started: engine name ->
    (runnable, skipped results). A file
    named on the command line that no engine of the run can carry out is refused
    (``requirements.Refused``, exit 3, with the steps); on a multi-engine run, it is skipped
    where it cannot run and runs where it can."""
    from labctl.scenario import requirements

    explicit = requirements.explicit_files(paths)
    out: dict[str, tuple[list[Scenario], list[ScenarioResult]]] = {}
    arch = bool(allowed.get("platform")) or any(c.platform or (c.image or "").startswith("labctl/")
                                                 for s in scenarios for c in s.containers)
    runtimes = any(c.runtime for s in scenarios for c in s.containers)
    found = {eng.name: requirements.triage(scenarios, machine(allowed, eng, arch, runtimes), set(), engine=True)
             for eng in engines}
    runnable_somewhere = {s.name for t in found.values() for s in t.runnable}
    refused = [(s, missing) for s, missing in next(iter(found.values())).skipped
               if os.path.normpath(s.file) in explicit and s.name not in runnable_somewhere] if found else []
    if refused:
        raise requirements.refusal(refused)
    for name, t in found.items():
        out[name] = (t.runnable, skipped_results(t))
    return out


def connect(engine: str | None = None):
    """The engine named ``engine`` (``docker``/``podman``; None: the default), through
    ``Engine.connect``; EngineError (exit 3) when unreachable."""
    from labctl.runtime import hostpaths
    from labctl.runtime import Engine

    eng = Engine.connect(engine)
    hostpaths.view(eng)  # before anything is created: in a container, labels name it
    return eng


def ensure_image(engine, progress: Progress, force: bool = False):
    """Build the workload image unless up to date; returns build's result (``.image``, ``.built``)."""
    from labctl.images import build

    return build.ensure_image(engine, force=force, progress=progress.line)


def binfmt_dir():
    """Where binfmt_misc is read (``LABCTL_BINFMT_DIR``, for tests of the missing-emulation
    path; default ``/proc/sys/fs/binfmt_misc``)."""
    from pathlib import Path

    from labctl.images import platforms

    return Path(os.environ.get("LABCTL_BINFMT_DIR") or platforms.BINFMT_DIR)


def check_platforms(engine, names: set[str], progress: Progress) -> None:
    """Before anything is built or started: every platform in ``names`` runs on the engine,
    natively or under emulation; PlatformUnavailable (exit 3, with the steps to install
    the emulation) otherwise. binfmt_misc is per host, so this is read only for an engine
    on this machine (a unix socket, labctl not in a container); a remote engine answers
    for itself at start-up."""
    from labctl.images import platforms

    if not names:
        return
    from labctl.runtime.hostpaths import in_container

    arch = engine.architecture()
    address = str(getattr(engine, "address", "unix://"))
    # in a container (the labctl image) /proc/sys/fs/binfmt_misc is not the engine host's
    local = address.startswith("unix://") and not in_container()
    for name in sorted(set(names)):
        plat = platforms.parse(name)
        if platforms.is_native(plat, arch):
            continue
        if not local:
            progress.line(f"{name}: the binfmt_misc of the engine at {address} cannot be read from here; "
                          "a missing emulation shows as 'exec format error' when a container starts")
        elif platforms.require_runnable(plat, arch, binfmt_dir=binfmt_dir()):
            progress.line(f"{name} runs under emulation on this {arch} engine (qemu via binfmt_misc: slow, "
                          "correct for IPC semantics, meaningless for timings)")


def prepare_images(engine, scenarios: Iterable[Scenario], platform: str | None, progress: Progress) -> tuple[str, dict[str, str]]:
    """What a run of ``scenarios`` needs before it starts: every platform it names (and
    ``platform``) checked to run on the engine (exit 3 otherwise, nothing started), then
    the engine's own workload image and one per platform built if missing, and the
    example programs (``image: labctl/<name>`` from ``images/<name>``) they run.
    Returns (image, platform -> image)."""
    from labctl.images import examples

    scenarios = list(scenarios)
    wanted = {c.platform for s in scenarios for c in s.containers if c.platform and c.workload}
    if platform:
        wanted.add(platform)
    check_platforms(engine, wanted, progress)
    image = ensure_image(engine, progress).image
    return image, build_extras(engine, scenarios, platform, progress)


def build_extras(engine, scenarios: Iterable[Scenario], platform: str | None, progress: Progress, *,
                 platforms: bool = True) -> dict[str, str]:
    """The images ``scenarios`` need besides the engine's own workload image: the example
    programs they run (``image: labctl/<name>``), then (``platforms``) the workload image of
    each platform they name (and ``platform``). Returns platform -> image. Raises BuildError."""
    from labctl.images import examples

    scenarios = list(scenarios)
    wanted = {c.platform for s in scenarios for c in s.containers if c.platform and c.workload}
    if platform:
        wanted.add(platform)
    for name in examples.referenced(c.image for s in scenarios for c in s.containers if c.image):
        examples.ensure(engine, name, progress=progress.line)
    return ensure_platform_images(engine, wanted, progress) if platforms else {}


def native_platform(engine) -> str:
    """The engine's own platform (``linux/amd64`` on an x86_64 engine)."""
    from labctl.images import platforms

    return platforms.of_engine(engine.architecture()).name


def ensure_platform_images(engine, names: Iterable[str], progress: Progress, force: bool = False) -> dict[str, str]:
    """The workload image of each platform in ``names`` (built if missing): platform -> ref."""
    from labctl.images import build
    from labctl.images import platforms

    return {name: build.ensure_image(engine, platform=platforms.parse(name), force=force,
                                     progress=progress.line).image
            for name in sorted(set(names))}


def quiet(ctx, local: bool) -> bool:
    """``-q`` given after the command, or before it (``labctl -q run``)."""
    return bool(local or ctx.find_root().params.get("quiet"))
