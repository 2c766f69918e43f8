"""Build zig's musl for each cross platform the tests build workloads for, ahead of them.

Run by ``.ci/run`` in the background, in the test venv, while the machine is set up: zig's
first compile for a target builds musl (30-60 s of both cores per target here); afterwards
``labctl build --platform P`` takes seconds. It compiles an empty program with labctl's own
toolchain and flags (``labctl.images.build``), so zig's cache holds what those builds ask
for. The platforms: every ``platform:`` a library scenario names, and linux/arm64 (the
library's platform run), minus the machine's own. A failure here fails nothing: the tests
then build musl themselves, as on any machine.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labctl import scenario as scen
from labctl.images import build, platforms

ROOT = Path(__file__).resolve().parent.parent


def cross_platforms() -> list[str]:
    named = {c.platform for s in scen.load_all([str(ROOT / "scenarios")]) for c in s.containers if c.platform}
    native = platforms.of_engine(build.host_arch()).name
    return sorted((named | {"linux/arm64"}) - {native})


def main() -> int:
    wanted = cross_platforms()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labctl-warm-") as tmp:
        src = Path(tmp, "empty.c")
        src.write_text("int main(void) { return 0; }\n")
        procs = {name: subprocess.Popen(build.compile_command(build.toolchain(platforms.parse(name)), [src],
                                                              Path(tmp, f"empty-{i}")), stdin=subprocess.DEVNULL)
                 for i, name in enumerate(wanted)}
        codes = {name: p.wait() for name, p in procs.items()}
    print(f"zig's musl for {', '.join(wanted)}: exit codes {codes}, {time.monotonic() - t0:.1f} s", flush=True)
    return max(codes.values(), default=0)


if __name__ == "__main__":
    sys.exit(main())
