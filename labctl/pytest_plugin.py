"""labctl's pytest plugin: scenario files as test items, and a ``labctl`` fixture.

Registered through the ``pytest11`` entry point, so installing labctl makes it
available everywhere; it does nothing unless asked:

* ``pytest --labctl scenarios/`` (or the ini option ``labctl_paths = scenarios``)
  collects each scenario file under the given paths as one item named by the
  scenario, with its tags as markers (``-m pitfall``, ``-m "not host"``).
* ``--labctl-jobs N``, ``--labctl-keep`` and ``--labctl-allow-*`` are the runner's
  ``--jobs``, ``--keep`` and opt-ins; an opt-in scenario not allowed is skipped,
  naming the flag it needs.
* The fixture ``labctl`` runs scenarios from a test: ``labctl.run("x.yaml")`` and
  ``labctl.scenario({...})`` return a :class:`Outcome` to assert on.

The items run on the same runner as ``labctl run`` (same labels, same teardown): the
first item to run starts the whole selection in a background thread (``jobs`` at a
time) and every item waits for its own result. An interrupted session (Ctrl-C)
removes everything labelled with the session's run id before pytest exits. Nothing
here imports the engine until a scenario actually runs.

Ctrl-C interrupts every phase (exit 2, nothing left): engine and image builds run in the
main thread, the final removal holds a Ctrl-C until done, and a SIGINT inherited ignored
(a CI script's ``cmd &``) gets Python's handler back (``labctl.cli.sigint``).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from labctl.report.results import CheckResult, ScenarioResult
    from labctl.runtime.engine import Engine
    from labctl.scenario.model import Scenario

SUFFIXES = (".yaml", ".yml")
# the runner's opt-ins, as ``--labctl-<flag>`` options (labctl run's ``--<flag>``)
OPT_INS = ("allow-host-ipc", "allow-host-paths", "allow-privileged")
RESULT_WAIT_S = 24 * 3600.0  # each scenario has its own deadline; this only bounds a lost thread
STOP_JOIN_S = 10.0  # after an interrupt, how long the background run gets to tear down


# ==== options ====


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl", "labctl shared-memory scenarios")
    group.addoption("--labctl", action="store_true", default=False,
                    help="collect labctl scenario files (*.yaml, *.yml) under the given paths as test items")
    group.addoption("--labctl-jobs", type=int, default=None, metavar="N",
                    help="scenarios run in parallel (labctl run --jobs; default 1)")
    group.addoption("--labctl-keep", action="store_true", default=False,
                    help="leave the scenarios' containers for inspection (`labctl clean` removes them)")
    for flag in OPT_INS:
        group.addoption(f"--labctl-{flag}", action="store_true", default=False,
                        help=f"let scenarios that need labctl run --{flag} run (otherwise they are skipped)")
    parser.addini("labctl_paths", type="paths", default=[],
                  help="scenario files or folders collected as labctl items (as if given with --labctl)")


def _roots(config: pytest.Config) -> list[Path] | None:
    """Where scenario files are collected: anywhere under the command-line paths with
    ``--labctl``, under ``labctl_paths`` otherwise, nowhere when neither is set."""
    if config.getoption("labctl"):
        return []  # no restriction: whatever paths pytest collects
    paths = config.getini("labctl_paths")
    return [Path(p).resolve() for p in paths] if paths else None


def pytest_configure(config: pytest.Config) -> None:
    roots = _roots(config)
    if roots and config.args_source != pytest.Config.ArgsSource.ARGS:
        # the ini form adds its paths to what pytest collects by default (testpaths or
        # the current folder); paths named on the command line are taken as they are
        config.args = [*config.args, *(str(p) for p in roots if str(p) not in config.args)]
    if roots is not None:
        config.stash[_SESSION] = LabSession(config)
        from labctl.cli.sigint import heed_sigint

        restore = heed_sigint()
        if restore is not None:
            config.add_cleanup(restore)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    roots = _roots(parent.config)
    if roots is None or file_path.suffix not in SUFFIXES or file_path.name.startswith("."):
        return None
    if roots and not any(file_path.resolve().is_relative_to(r) for r in roots):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


# ==== collection ====


class ScenarioFile(pytest.File):
    """A scenario file: one item, or a collection error with FILE:LINE:COL lines."""

    def collect(self) -> Iterator[pytest.Item]:
        from labctl import scenario as scen
        from labctl.errors import LabctlError

        try:
            s = scen.load_file(str(self.path))
        except LabctlError as e:  # ScenarioErrors: every problem, positioned
            raise self.CollectError(str(e)) from None
        item = ScenarioItem.from_parent(self, name=s.name, scenario=s)
        for tag in s.tags:
            # tags are markers; registered on the fly so --strict-markers accepts them
            self.config.addinivalue_line("markers", f"{tag}: labctl scenario tag")
            item.add_marker(tag)
        yield item


class ScenarioItem(pytest.Item):
    """One scenario, carried out by labctl's runner."""

    def __init__(self, *, scenario: Scenario, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.result: ScenarioResult | None = None

    def runtest(self) -> None:
        session: LabSession = self.config.stash[_SESSION]
        missing = session.missing_opt_ins(self.scenario)
        if missing:
            pytest.skip(f"needs {' '.join('--labctl-' + f for f in missing)}")
        self.result = session.result_of(self)
        if self.result.status == "skipped":
            pytest.skip(self.result.message or "skipped by the runner")
        if self.result.status != "passed":
            raise ScenarioFailed(self.result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.report()
        if isinstance(excinfo.value, LabSetupError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"labctl scenario {self.name}"


class ScenarioFailed(Exception):
    """A scenario that failed or erred; its report is labctl's own text report."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.message or result.status)
        self.result = result

    def report(self) -> str:
        from labctl.report import formats
        from labctl.report.results import RunResult

        return formats.render(RunResult("pytest", [self.result], self.result.duration_s), "text").rstrip()


class LabSetupError(Exception):
    """The engine or the image could not be had: every scenario item fails with this."""


# ==== running the selection ====

_SESSION = pytest.StashKey["LabSession"]()


class LabSession:
    """The session's run of labctl items: engine, image, a background run, results."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run_id = str(uuid.uuid4())
        self.cancel = threading.Event()
        self.results: dict[str, ScenarioResult] = {}
        self.done = threading.Condition()
        self.thread: threading.Thread | None = None
        self.failure: str | None = None
        self.engine: Engine | None = None
        self._lock = threading.Lock()

    def allowed(self) -> dict[str, bool]:
        return {f: bool(self.config.getoption(f"labctl_{f.replace('-', '_')}")) for f in OPT_INS}

    def missing_opt_ins(self, s: Scenario) -> list[str]:
        from labctl.cli.common import missing_opt_ins

        allowed = {f.replace("-", "_"): v for f, v in self.allowed().items()}
        return sorted({flag for flag, _path, _pos in missing_opt_ins(s, allowed)})

    def result_of(self, item: ScenarioItem) -> ScenarioResult:
        """Start the selection's run on the first call; wait for ``item``'s result.

        The first call connects to the engine and builds the images in this (the main)
        thread, so a Ctrl-C during a long build interrupts it at once (``subprocess.run``
        kills the compiler); only the run itself goes to the background thread."""
        with self._lock:
            if self.thread is None and self.failure is None:
                todo = [i.scenario for i in item.session.items
                        if isinstance(i, ScenarioItem) and not self.missing_opt_ins(i.scenario)]
                prepared = self._prepare(todo)
                if prepared is not None:
                    self.thread = threading.Thread(target=self._run, args=(todo, *prepared), name="labctl-run",
                                                   daemon=True)
                    self.thread.start()
        with self.done:
            self.done.wait_for(lambda: item.scenario.name in self.results or self.failure is not None
                               or not (self.thread and self.thread.is_alive()), timeout=RESULT_WAIT_S)
        if item.scenario.name in self.results:
            return self.results[item.scenario.name]
        raise LabSetupError(f"labctl: {self.failure or 'the run ended without a result for this scenario'}")

    def _prepare(self, scenarios: list[Scenario]) -> tuple[str, dict[str, str]] | None:
        """Connect to the engine and build what the run needs: (image, platform images),
        or None with ``failure`` set (every item then fails with it)."""
        from labctl.cli.common import Progress, prepare_images
        from labctl.errors import LabctlError
        from labctl.runtime import Engine

        try:
            self.engine = Engine.connect()
            return prepare_images(self.engine, scenarios, None, Progress(quiet=True))
        except LabctlError as e:  # engine unreachable, build failed: every item says so
            self.failure = str(e)
        return None

    def _run(self, scenarios: list[Scenario], image: str, images: dict[str, str]) -> None:
        from labctl import runner
        from labctl.errors import Interrupted, LabctlError

        def deliver(res: ScenarioResult) -> None:
            with self.done:
                self.results[res.name] = res
                self.done.notify_all()

        try:
            assert self.engine is not None  # connected by _prepare
            runner.run_all(self.engine, scenarios, image, run_id=self.run_id,
                           jobs=self.config.getoption("labctl_jobs") or 1,
                           keep=self.config.getoption("labctl_keep"), cancel=self.cancel, on_result=deliver,
                           images=images)
        except Interrupted:
            self.failure = "interrupted"
        except LabctlError as e:
            self.failure = str(e)
        except Exception as e:  # noqa: BLE001 - reported by every waiting item, never lost
            self.failure = f"{type(e).__name__}: {e}"
        finally:
            with self.done:
                self.done.notify_all()

    def stop(self, session: pytest.Session) -> None:
        """After the session (normal or interrupted): stop the background run and remove
        whatever this session's run id labelled, unless --labctl-keep. A Ctrl-C meanwhile
        does not cut this short (that would leave the run's containers): it is held until
        the removal is done, and then makes the session's exit status 2 (interrupted)."""
        from labctl.runtime.signals import interrupts_held

        with interrupts_held() as held:
            self._stop()
        if held:
            session.exitstatus = pytest.ExitCode.INTERRUPTED

    def _stop(self) -> None:
        if self.engine is None:
            return
        if self.thread is not None and self.thread.is_alive():
            self.cancel.set()
            self.engine.remove_labelled(_selector(self.run_id))
            self.thread.join(STOP_JOIN_S)
        if self.thread is not None and not self.config.getoption("labctl_keep"):
            self.engine.remove_labelled(_selector(self.run_id))
        self.engine.close()


def _selector(run_id: str) -> dict[str, str]:
    from labctl.runtime.labels import selector

    return selector(run_id)


def pytest_sessionfinish(session: pytest.Session) -> None:
    lab = session.config.stash.get(_SESSION, None)
    if lab is not None:
        lab.stop(session)


# ==== the fixture ====


@dataclass
class Outcome:
    """What one scenario run gave, for assertions in a test.

    ``status``: passed | failed | error | skipped; ``checks``: CheckResult by check
    name (``status``, ``expected``, ``observed``, ``message``); ``outputs``: each
    container's retained output (its last lines) by container name; ``events(name)``:
    the JSON events (dicts) among a container's retained lines.
    """

    result: ScenarioResult
    checks: dict[str, CheckResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.checks = {c.name: c for c in self.result.checks}

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def passed(self) -> bool:
        return self.result.status == "passed"

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.result.logs)

    def events(self, container: str, name: str | None = None) -> list[dict]:
        """The JSON events a container printed (among its retained lines), optionally
        only those whose ``event`` is ``name``. KeyError for an unknown container."""
        from labctl.runtime.jsonlines import json_events

        events = json_events(self.result.logs[container], strip=True)
        return [ev for ev in events if name is None or ev.get("event") == name]

    def report(self) -> str:
        """labctl's text report of this scenario (what ``labctl run`` prints)."""
        return ScenarioFailed(self.result).report()


class Lab:
    """The ``labctl`` fixture: run scenarios from a test on the session's engine."""

    def __init__(self, engine: Engine, image: str, base_dir: Path, allowed: dict[str, bool]) -> None:
        self.engine = engine
        self.image = image
        self.base_dir = base_dir
        self.allowed = allowed
        self.run_id = str(uuid.uuid4())

    def run(self, path: str | os.PathLike[str]) -> Outcome:
        """Validate and run one scenario file (relative paths from the test's folder);
        ``labctl.errors.ScenarioErrors`` for a bad file (FILE:LINE:COL lines)."""
        from labctl import scenario as scen

        p = Path(path)
        if not p.is_absolute():
            p = self.base_dir / p
        return self._run(scen.load_file(str(p)))

    def scenario(self, spec: dict[str, Any], *, name: str = "inline") -> Outcome:
        """Run a scenario given as a dict (the YAML file's content); relative host paths
        resolve from the test's folder. ScenarioErrors point into ``<name>.yaml``."""
        import yaml

        from labctl import scenario as scen

        text = yaml.safe_dump(spec, sort_keys=False)
        return self._run(scen.load_text(text, f"{name}.yaml", base_dir=str(self.base_dir)))

    def _run(self, s: Scenario) -> Outcome:
        from labctl.cli.common import refuse_opt_ins
        from labctl.runner import run_scenario

        from labctl.cli.common import Progress, prepare_images

        refuse_opt_ins([s], self.allowed, [])  # ScenarioErrors naming the opt-in it lacks
        _image, images = prepare_images(self.engine, [s], None, Progress(quiet=True))
        return Outcome(run_scenario(self.engine, s, self.run_id, self.image, keep_logs=True, images=images))


@pytest.fixture(scope="session")
def _labctl_engine(pytestconfig: pytest.Config) -> Iterator[tuple[Engine, str]]:
    from labctl.images import build
    from labctl.runtime import Engine

    engine = Engine.connect()
    try:
        yield engine, build.ensure_image(engine).image
    finally:
        engine.close()


@pytest.fixture
def labctl(_labctl_engine: tuple[Engine, str], request: pytest.FixtureRequest) -> Iterator[Lab]:
    """Run labctl scenarios from a test: ``labctl.run(path)``, ``labctl.scenario(dict)``.
    Opt-ins follow ``--labctl-allow-*``. Whatever the test's runs leave (an interrupt
    in the middle of one) is removed by label when the test ends."""
    engine, image = _labctl_engine
    allowed = {f.replace("-", "_"): bool(request.config.getoption(f"labctl_{f.replace('-', '_')}"))
               for f in OPT_INS}
    lab = Lab(engine, image, Path(request.path).parent, allowed)
    try:
        yield lab
    finally:
        engine.remove_labelled(_selector(lab.run_id))
