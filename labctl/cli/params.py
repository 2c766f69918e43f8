"""How labctl declares options: every one also reads ``LABCTL_<FLAG>`` from the environment.

``option(...)`` is ``click.option`` with ``cls=EnvOption``: the variable is derived from the
long flag (``--allow-host-ipc`` -> ``LABCTL_ALLOW_HOST_IPC``, ``-k`` -> ``LABCTL_K``), shown
in ``--help``, and a malformed value is a usage error (exit 2) naming the variable. click
reads a variable only for the options of the command being run, so a bad
``LABCTL_ITERATIONS`` (a bench option) does not break ``labctl run``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import click

from labctl.runtime.lookup import ENGINE_NAMES
from labctl.report.results import REPORT_FORMATS
from labctl.scenario.requirements import OPT_INS  # noqa: F401 - the CLI declares one flag per opt-in

ENV_PREFIX = "LABCTL_"
RUN_FORMATS = REPORT_FORMATS
LIST_FORMATS = ("text", "json")
HANDOUT_FORMATS = (*LIST_FORMATS, "markdown")  # list only: markdown is the handout
ALL_FORMATS = (*RUN_FORMATS, "markdown")
_BOOL_WORDS = "1, true, yes, on, 0, false, no, off"


def env_name(flag: str) -> str:
    """``allow-host-ipc`` -> ``LABCTL_ALLOW_HOST_IPC``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


class CommaList(click.ParamType):
    """One item per use of a repeatable option; from the environment, a comma-separated
    list (``LABCTL_TAG="a, b"``), blanks dropped."""

    name = "list"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [x.strip() for x in rv.split(",") if x.strip()]


class PlatformType(CommaList):
    """An OCI platform labctl builds for (``linux/arm64``; aliases such as ``linux/arm64/v8``
    accepted), converted to its canonical name; anything else is a usage error listing them."""

    name = "platform"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from labctl.images import platforms

        plat = platforms.lookup(str(value))
        if plat is None:
            self.fail(f"unsupported platform {value!r} (supported: {', '.join(platforms.names())})", param, ctx)
        return plat.name


class EnvOption(click.Option):
    """A click option whose environment variable is ``LABCTL_<FLAG>``.

    ``env_ignore``: values that are valid for another command and are then ignored here
    (the default applies): ``LABCTL_FORMAT=junit`` is meant for ``run``, so ``list`` keeps text.
    """

    def __init__(self, *args: Any, env_ignore: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.envvar is None and self.name:
            longs = [o for o in self.opts if o.startswith("--")]
            self.envvar = env_name(longs[0] if longs else self.name)
        self.show_envvar = True
        self.env_ignore = env_ignore

    def value_from_envvar(self, ctx: click.Context) -> Any:
        """The value of ``LABCTL_<FLAG>``, converted; None when unset, empty or meant for
        another command. A value the option's type refuses is a usage error naming the
        variable (click would name only the flag, which the user did not type)."""
        raw = os.environ.get(str(self.envvar))
        if raw is None or not raw.strip() or raw.strip() in self.env_ignore:
            return None
        if self.multiple:
            return self.type.split_envvar_value(raw)
        try:
            return self.type.convert(raw.strip(), self, ctx)
        except click.BadParameter as e:
            raise click.BadParameter(f"{self.envvar}={raw!r}: {self._expected(e)}", ctx, self) from None

    def get_error_hint(self, ctx: click.Context | None) -> str:
        # The flags only: click would add "(env var: ...)" even when the value came from
        # the command line; a value from the environment names its variable in the message.
        return " / ".join(repr(o) for o in self.opts)

    def _expected(self, e: click.BadParameter) -> str:
        if self.is_flag or isinstance(self.type, click.types.BoolParamType):
            return f"expected one of {_BOOL_WORDS}"
        if isinstance(self.type, PlatformType):
            return e.message
        if isinstance(self.type, click.Choice):
            return f"expected one of {', '.join(map(str, self.type.choices))}"
        if isinstance(self.type, click.types.IntParamType):
            return "expected an integer" + _range(self.type)
        if isinstance(self.type, click.types.FloatParamType):
            return "expected a number" + (f" of {self.metavar.lower()}" if self.metavar else "")
        return e.message


def _range(t: click.ParamType) -> str:
    lo = getattr(t, "min", None)
    return f" of at least {lo}" if lo is not None else ""


def option(*decls: str, **kwargs: Any) -> Callable:
    """``click.option`` reading ``LABCTL_<FLAG>`` too; see the module docstring."""
    return click.option(*decls, cls=EnvOption, **kwargs)


# ---- options shared by several commands (one decorator each)


def paths(f: Callable) -> Callable:
    return click.argument("paths", nargs=-1, metavar="[PATH]...", type=click.Path())(f)  # the loader says what is missing


def quiet(f: Callable) -> Callable:
    return option("-q", "--quiet", is_flag=True, help="No progress on stderr.")(f)


def filters(f: Callable) -> Callable:
    f = option("-k", "k", multiple=True, type=CommaList(), metavar="SUBSTRING",
               help="Only scenarios whose name contains SUBSTRING (repeatable).")(f)
    return option("--tag", multiple=True, type=CommaList(), metavar="TAG",
                  help="Only scenarios with this tag (repeatable).")(f)


def platform_option(help: str, multiple: bool = False) -> Callable:
    from labctl.images.platforms import names  # docker-free and tiny

    return option("--platform", "platform", multiple=multiple, type=PlatformType(), metavar="OS/ARCH",
                  help=f"{help} ({', '.join(names())}).")


def opt_ins(f: Callable) -> Callable:
    for flag, what in reversed(OPT_INS.items()):
        f = option(f"--{flag}", is_flag=True, help=f"Allow {what}.")(f)
    return f


def output_format(choices: tuple[str, ...], what: str = "Output format") -> Callable:
    return option("--format", type=click.Choice(choices), default="text", show_default=True,
                  env_ignore=tuple(x for x in ALL_FORMATS if x not in choices), help=f"{what}.")


class EngineList(CommaList):
    """Engine names for a repeatable ``--engine`` (``LABCTL_ENGINE=docker,podman``)."""

    name = "engine"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value not in ENGINE_NAMES:
            self.fail(f"{value!r} is not one of {', '.join(ENGINE_NAMES)}", param, ctx)
        return value


_ENGINE_HELP = ("Container engine: docker or podman (default: Docker, or the engine DOCKER_HOST/CONTAINER_HOST "
                "point at). Podman is reached through its API socket (/run/podman/podman.sock as root, "
                "$XDG_RUNTIME_DIR/podman/podman.sock rootless).")


def engine(f: Callable) -> Callable:
    """``--engine docker|podman`` of every command that touches an engine."""
    return option("--engine", type=click.Choice(ENGINE_NAMES), default=None, help=_ENGINE_HELP)(f)


def engines(f: Callable) -> Callable:
    """``run``'s repeatable ``--engine``: the scenarios run on each, reported side by side."""
    return option("--engine", "engines", multiple=True, type=EngineList(), metavar="ENGINE",
                  help=_ENGINE_HELP + " Repeat it (--engine docker --engine podman) to run on both and "
                  "compare the outcomes side by side.")(f)
