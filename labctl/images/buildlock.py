"""One build of an image at a time across labctl processes: a lock file per image in the build cache.

Two labctl processes started together on a fresh machine (parallel CI jobs on one host, a
test suite on several workers, ``labctl run`` beside ``labctl bench``) would each compile
the workload and build the same image; with the lock the second waits for the first and
then finds the image made.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def build_lock(cache: Path, name: str) -> Iterator[None]:
    """Hold the exclusive ``flock`` of ``<cache>/locks/<name>.lock`` (created when missing;
    characters other than ``[A-Za-z0-9._-]`` in ``name`` become ``-``). Blocks while another
    process holds it. A cache that cannot be written (a read-only home) means no lock: the
    build goes on as before, at worst twice."""
    try:
        folder = cache / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{re.sub(r'[^A-Za-z0-9._-]', '-', name)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
