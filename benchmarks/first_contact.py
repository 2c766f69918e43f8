#!/usr/bin/env python3
"""First contact: the README's first command, cold, timed to its summary line.

    benchmarks/first_contact.py [--source REPO] [--hide-emulation] [--keep] [--out FILE]

What it does, as a new user's first minutes would go:

1. ``git clone SOURCE`` (default: this checkout) into a fresh temporary folder;
2. a comment appended to every C source of ``images/`` in that clone only, so that the
   workload and example image hashes are new (nothing already built is reused) while
   nothing else on the engine changes;
3. the README's first command, literally, in the clone:
   ``python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/labctl run``
   with an empty zig cache (``ZIG_GLOBAL_CACHE_DIR``: zig builds musl again) and an empty
   labctl build cache (``XDG_CACHE_HOME``); pip keeps its own download cache
   (``PIP_CACHE_DIR``), as a machine that installed any Python package before would.
   ``--hide-emulation`` points ``LABCTL_BINFMT_DIR`` at an empty folder: the run sees a
   machine without qemu/binfmt_misc (the newcomer's case), without touching the host's.

Measures, from the start of the command: ``install_s`` (pip done), ``first_pass_s`` (the
first ``PASS`` progress line), ``summary_s`` (the summary line on stdout) and the exit
status; prints them as JSON on stdout (``--out`` also writes the file).

Afterwards the images the clone built (new hashes, ``labctl/shmlab:<hash12>[-suffix]``
and ``labctl/<example>:<hash12>``) are removed, and the ``latest*`` tags they moved are
put back on the images they named before: images other checkouts use stay untouched.
Run it on a quiet machine; the figures are wall times of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/labctl run"
LATEST_TAGS = ("labctl/shmlab:latest", "labctl/shmlab:latest-amd64", "labctl/shmlab:latest-386",
               "labctl/shmlab:latest-arm64", "labctl/shmlab:latest-armv7", "labctl/sensor:latest")
BUILT = re.compile(r"building (?:example )?image (labctl/[a-z0-9_-]+:[0-9a-f]{12}(?:-[a-z0-9]+)?)")


def _say(msg: str) -> None:
    print(f"first_contact: {msg}", file=sys.stderr, flush=True)


def _image_id(ref: str) -> str | None:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def _readme_command() -> str:
    """The README's first command, checked: the benchmark times what the README says."""
    readme = (ROOT / "README.md").read_text()
    if README_COMMAND not in readme:
        raise SystemExit(f"first_contact: README.md no longer says {README_COMMAND!r}; update this benchmark")
    return README_COMMAND


def touch_sources(clone: Path) -> list[Path]:
    """Append a comment to every C source under ``images/``: new content hashes."""
    touched = []
    stamp = f"/* first-contact benchmark {time.time_ns()} */\n"
    for path in sorted((clone / "images").glob("*/*.c")):
        path.write_text(path.read_text() + stamp)
        touched.append(path)
    return touched


def run(source: str, hide_emulation: bool, keep: bool, leave_out: list[str] = ()) -> dict[str, object]:
    command = _readme_command()
    work = Path(tempfile.mkdtemp(prefix="fc-"))
    clone = work / "labctl"
    subprocess.run(["git", "clone", "-q", source, str(clone)], check=True)
    touch_sources(clone)
    for name in leave_out:  # a before/after comparison with code that cannot skip a scenario
        (clone / "scenarios" / f"{name}.yaml").unlink()
    env = dict(os.environ)
    for var in [v for v in env if v.startswith("LABCTL_")]:
        del env[var]  # the user's own settings would not be there on a fresh machine
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env["ZIG_GLOBAL_CACHE_DIR"] = str(work / "zig-cache")
    env["XDG_CACHE_HOME"] = str(work / "cache")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if hide_emulation:
        (work / "binfmt").mkdir()
        env["LABCTL_BINFMT_DIR"] = str(work / "binfmt")
    before = {ref: _image_id(ref) for ref in LATEST_TAGS}
    marks: dict[str, float] = {}
    stderr_lines: list[str] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(["sh", "-c", command], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line)
            if line.startswith("scenarios:"):  # labctl's first line: pip is done
                marks.setdefault("install", time.monotonic() - t0)
            if re.search(r"\] PASS ", line):
                marks.setdefault("first_pass", time.monotonic() - t0)

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    stdout_lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        stdout_lines.append(line)
        if re.search(r"\d+ passed, \d+ failed, \d+ errors", line):
            marks.setdefault("summary", time.monotonic() - t0)
    rc = proc.wait()
    total = time.monotonic() - t0
    reader.join(10)
    summary = next((ln.strip() for ln in stdout_lines if re.search(r"\d+ passed, \d+ failed", ln)), "")
    built = sorted(set(BUILT.findall("".join(stderr_lines))))
    result: dict[str, object] = {
        "command": command,
        "hide_emulation": hide_emulation,
        "left_out": list(leave_out),
        "exit": rc,
        "install_s": round(marks.get("install", 0.0), 1),
        "first_pass_s": round(marks.get("first_pass", 0.0), 1),
        "summary_s": round(marks.get("summary", total), 1),
        "total_s": round(total, 1),
        "summary": summary,
        "skips": [ln.strip() for ln in stderr_lines if ln.startswith("SKIP ")],
        "built": built,
        "cores": os.cpu_count(),
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
    }
    if rc != 0:
        result["stderr_tail"] = "".join(stderr_lines[-40:])
    # put the latest* tags back where they were, then drop what this clone built
    for ref, image_id in before.items():
        if image_id:
            subprocess.run(["docker", "tag", image_id, ref], capture_output=True, check=False)
        else:
            if _image_id(ref) in {_image_id(b) for b in built}:
                subprocess.run(["docker", "rmi", ref], capture_output=True, check=False)
    for ref in built:
        subprocess.run(["docker", "rmi", ref], capture_output=True, check=False)
    if keep:
        result["clone"] = str(clone)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=str(ROOT), help="the repository to clone (default: this checkout)")
    ap.add_argument("--hide-emulation", action="store_true",
                    help="run as on a machine without qemu/binfmt_misc (LABCTL_BINFMT_DIR=an empty folder)")
    ap.add_argument("--keep", action="store_true", help="keep the clone (its path is in the output)")
    ap.add_argument("--leave-out", action="append", default=[], metavar="SCENARIO",
                    help="delete scenarios/SCENARIO.yaml in the clone first (repeatable)")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    _say(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    result = run(a.source, a.hide_emulation, a.keep, a.leave_out)
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0 if result["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
