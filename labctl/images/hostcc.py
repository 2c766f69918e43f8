"""A host C compiler that links static binaries, when the machine has one.

``cc`` or ``gcc`` on ``PATH`` is used for the host's own platform if it can link a static
program (glibc's ``libc.a`` installed, as with Debian's ``libc6-dev``): a second or two,
where zig's first run for a target builds musl (half a minute or more on two cores). The
probe compiles a one-line program once per compiler identity (its ``--version`` line) and
remembers the verdict under the build cache. No engine access.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

CANDIDATES = ("cc", "gcc")
PROBE_TIMEOUT_S = 60.0
PROBE_SOURCE = "#include <stdio.h>\nint main(void) { return puts(\"\") < 0; }\n"


def identity(argv: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The first line of ``argv --version`` (what the content hash records), or None."""
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=30, check=False,
                             env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else None


def links_static(argv: tuple[str, ...], env: Mapping[str, str]) -> bool:
    """True when ``argv -static`` compiles and links a program that uses libc."""
    with tempfile.TemporaryDirectory(prefix="labctl-cc-") as d:
        src = Path(d) / "probe.c"
        src.write_text(PROBE_SOURCE)
        try:
            proc = subprocess.run([*argv, "-static", "-o", str(Path(d) / "probe"), str(src)], capture_output=True,
                                  timeout=PROBE_TIMEOUT_S, check=False, env=dict(env))
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0 and (Path(d) / "probe").is_file()


def find(env: Mapping[str, str], cache: Path) -> tuple[tuple[str, ...], str] | None:
    """(argv, identity) of the first host compiler of :data:`CANDIDATES` on ``env['PATH']``
    that links static binaries, or None. The verdict per compiler is kept in ``cache``."""
    path = env.get("PATH", "")
    for name in CANDIDATES:
        exe = shutil.which(name, path=path) if path else None
        if exe is None:
            continue
        argv = (exe,)
        ident = identity(argv, env)
        if ident is None:
            continue
        mark = cache / "hostcc" / hashlib.sha256(f"{exe}\n{ident}".encode()).hexdigest()[:16]
        try:
            verdict = mark.read_text().strip()
        except OSError:
            verdict = ""
        if verdict not in ("ok", "no"):
            verdict = "ok" if links_static(argv, env) else "no"
            try:
                mark.parent.mkdir(parents=True, exist_ok=True)
                tmp = mark.with_suffix(f".{os.getpid()}")
                tmp.write_text(verdict + "\n")
                os.replace(tmp, mark)
            except OSError:
                pass  # the cache is an optimisation: the next run probes again
        if verdict == "ok":
            return argv, ident
    return None
