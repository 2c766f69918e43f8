"""The lifecycle workloads (sysv-private, devshm-fill, devshm-map, probe --objects) on the
real engine, driven with the Docker SDK directly, as test_workloads.py does."""

from __future__ import annotations

import pytest

from tests.integration.test_workloads import Lab, events, exit_code, lab, named, probe, wait_event  # noqa: F401

pytestmark = pytest.mark.integration


def objects(container) -> dict:
    return probe(container, "--objects")["objects"]


def test_sysv_private_sigterm_removes_sigkill_leaves(lab: Lab) -> None:
    holder = lab.start("holder", ["hold"], ipc_mode="shareable")
    wait_event(holder, "holding")
    polite = lab.start("polite", ["sysv-private", "--count", "2", "--size", "8k"], ipc_mode=f"container:{holder.name}")
    rude = lab.start("rude", ["sysv-private", "--count", "3", "--size", "8k", "--fill"],
                     ipc_mode=f"container:{holder.name}")
    wait_event(polite, "holding")
    wait_event(rude, "holding")
    assert objects(holder)["shm"] == 5
    assert all(e["key"] == 0 and e["created"] for e in named(events(rude), "attached"))
    polite.stop(timeout=5)
    rude.kill(signal="SIGKILL")
    assert exit_code(polite) == 0 and exit_code(rude) == 137
    assert len(named(events(polite), "removed")) == 2 and not named(events(rude), "removed")
    assert objects(holder)["shm"] == 3


def test_sysv_private_rmid_at_once_and_exit_code(lab: Lab) -> None:
    holder = lab.start("holder", ["hold"], ipc_mode="shareable")
    wait_event(holder, "holding")
    app = lab.start("app", ["sysv-private", "--count", "2", "--rmid", "--exit", "3"],
                    ipc_mode=f"container:{holder.name}")
    assert exit_code(app) == 3
    evs = events(app)
    assert len(named(evs, "marked")) == 2 and named(evs, "exiting")[0]["exit"] == 3
    assert objects(holder)["shm"] == 0  # marked, so gone with the last detach (the crash)


def test_devshm_fill_enospc_exit_29_and_clean(lab: Lab) -> None:
    holder = lab.start("holder", ["hold"], ipc_mode="shareable", shm_size=4 << 20)
    wait_event(holder, "holding")
    ipc = f"container:{holder.name}"
    first = lab.start("first", ["devshm-fill", "--name", "/c", "--size", "3m", "--exit", "1"], ipc_mode=ipc)
    assert exit_code(first) == 1
    second = lab.start("second", ["devshm-fill", "--name", "/c", "--size", "3m"], ipc_mode=ipc)
    assert exit_code(second) == 29
    [err] = named(events(second), "error")
    assert (err["call"], err["errno"]) == ("write", "ENOSPC")
    o = objects(holder)
    assert o["devshm_files"] == 2 and o["devshm_bytes"] == 4 << 20
    third = lab.start("third", ["devshm-fill", "--name", "/c", "--size", "1m", "--clean", "--unlink"], ipc_mode=ipc)
    assert exit_code(third) == 0
    evs = events(third)
    assert named(evs, "cleaned")[0]["removed"] == 2 and named(evs, "filled")[0]["name"] == "/c.1"
    assert objects(holder)["devshm_files"] == 0


def test_devshm_map_reads_what_another_wrote(lab: Lab) -> None:
    writer = lab.start("writer", ["devshm-fill", "--name", "/m", "--size", "2m", "--hold", "attached"],
                       ipc_mode="shareable")
    wait_event(writer, "holding")
    reader = lab.start("reader", ["devshm-map", "--name", "/m.1", "--wait", "5s"], ipc_mode=f"container:{writer.name}")
    assert wait_event(reader, "mapped")["size"] == 2 << 20
    reader.stop(timeout=5)
    writer.stop(timeout=5)
    assert exit_code(reader) == 0 and exit_code(writer) == 0
    assert named(events(reader), "unmapped")


def test_new_commands_refuse_bad_usage(lab: Lab) -> None:
    for role, cmd in (("a", ["devshm-fill", "--name", "x"]), ("b", ["sysv-private", "--exit", "300"]),
                      ("c", ["devshm-map", "--name", "/a/b"])):
        c = lab.start(role, cmd)
        assert exit_code(c) == 2, cmd
        assert named(events(c), "error")[0]["call"] == "usage"
