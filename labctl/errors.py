"""The one exception hierarchy of labctl; each carries the process exit code.

This module imports nothing from the package, so every layer may raise these.
Only ``labctl.cli`` prints them and exits.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class LabctlError(Exception):
    """Root of every error labctl reports to the user."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(LabctlError):
    """Bad command line: exit 2, nothing started."""

    exit_code = EXIT_USAGE


class ScenarioError(LabctlError):
    """One problem in a scenario file, located as FILE:LINE:COL: key.path: message."""

    exit_code = EXIT_USAGE

    def __init__(self, file: str, line: int | None, col: int | None, path: str, message: str) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.path = path
        self.detail = message
        where = file if line is None else f"{file}:{line}:{col if col is not None else 1}"
        key = f" {path}:" if path else ""
        super().__init__(f"{where}:{key} {message}")


class ScenarioErrors(LabctlError):
    """Several ScenarioError at once (validation reports them all, not only the first)."""

    exit_code = EXIT_USAGE

    def __init__(self, errors: list[ScenarioError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(e.message for e in self.errors))


class EngineError(LabctlError):
    """The Docker engine is unreachable or refused an operation labctl cannot do without."""

    exit_code = EXIT_ENVIRONMENT


class BuildError(LabctlError):
    """Compiling the workloads or building an image failed."""

    exit_code = EXIT_ENVIRONMENT


class ContainerStartError(LabctlError):
    """The engine refused to create or start one scenario container.

    Raised by the runtime with the engine's own words in ``reason``; the runner
    records it (a ``refused`` check may expect it) instead of crashing.
    """

    exit_code = EXIT_FAILED

    def __init__(self, container: str, reason: str) -> None:
        self.container = container
        self.reason = reason
        super().__init__(f"container {container!r} could not start: {reason}")


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived: raised by the signal handler, re-raised after cleanup ran.

    Deliberately *not* a LabctlError (nor an Exception), like KeyboardInterrupt: a broad
    ``except LabctlError``/``except Exception`` around an engine call or a check must not
    swallow it. ``exit_code``: 130 for SIGINT, 128+N for signal N (143 for SIGTERM)."""

    def __init__(self, signum: int = 2) -> None:
        self.signum = signum
        self.message = "interrupted" if signum == 2 else f"terminated by signal {signum}"
        super().__init__(self.message)
        self.exit_code = EXIT_INTERRUPTED if signum == 2 else 128 + signum

    def __str__(self) -> str:
        return self.message
