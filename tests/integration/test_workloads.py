"""The shmlab image on the real engine, driven with the Docker SDK directly (not
through the runner), so a workload bug and a runner bug are told apart.

Every container and volume is labelled like labctl's own and removed in a
finally; the autouse leak guard of conftest.py double-checks.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from labctl.images import build
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

SCENARIO = "test-workloads"
DEADLINE_S = 20.0
Event = dict[str, Any]


class Lab:
    """Creates labelled containers and volumes for one test and removes them all."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.run_id = str(uuid.uuid4())
        self.containers: list[Container] = []
        self.volumes: list[Any] = []

    def labels(self, role: str) -> dict[str, str]:
        return {"io.labctl.managed": "true", "io.labctl.run-id": self.run_id,
                "io.labctl.scenario": SCENARIO, "io.labctl.role": role, "io.labctl.pid": str(os.getpid())}

    def volume(self, role: str) -> str:
        vol = self.client.volumes.create(name=f"labctl-{self.run_id[:8]}-{SCENARIO}-{role}",
                                         labels=self.labels(role))
        self.volumes.append(vol)
        return str(vol.name)

    def start(self, role: str, command: list[str], **kwargs: Any) -> Container:
        # create, record, then start: a start failure still leaves it in the list to remove
        container = self.client.containers.create(
            self.image, command, name=f"labctl-{self.run_id[:8]}-{SCENARIO}-{role}",
            labels=self.labels(role), **kwargs,
        )
        self.containers.append(container)
        container.start()
        return container

    def close(self) -> None:
        errors: list[str] = []
        for c in reversed(self.containers):
            try:
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:  # best effort per object; report at the end
                errors.append(f"container {c.name}: {e}")
        for v in self.volumes:
            try:
                v.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                errors.append(f"volume {v.name}: {e}")
        assert not errors, "cleanup failed: " + "; ".join(errors)


@pytest.fixture
def lab(docker_client: docker.DockerClient, shmlab_image: str) -> Iterator[Lab]:
    the_lab = Lab(docker_client, shmlab_image)
    try:
        yield the_lab
    finally:
        the_lab.close()


# ==== helpers ====





def events(container: Container) -> list[Event]:
    """The JSON events on the container's stdout so far."""
    out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def named(evs: list[Event], name: str) -> list[Event]:
    return [e for e in evs if e["event"] == name]


def wait_event(container: Container, name: str, timeout: float = DEADLINE_S,
               where: Callable[[Event], bool] = lambda e: True) -> Event:
    """Poll the logs until an event ``name`` matching ``where`` shows; fail with the output."""
    found: list[Event] = []

    def seen() -> bool:
        found[:] = [e for e in named(events(container), name) if where(e)]
        return bool(found)

    if not wait_until(seen, timeout):
        container.reload()
        pytest.fail(f"{container.name}: no {name!r} event within {timeout}s (status {container.status}); "
                    f"output:\n{container.logs().decode('utf-8', 'replace')[-2000:]}")
    return found[0]


def exit_code(container: Container, timeout: float = DEADLINE_S) -> int:
    return int(container.wait(timeout=timeout)["StatusCode"])


def probe(container: Container, *args: str) -> Event:
    """``docker exec CONTAINER /shmlab probe ARGS`` (no shell in the image): its one object."""
    code, out = container.exec_run(["/shmlab", "probe", *args])
    assert code == 0, out
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert len(lines) == 1, out
    result: Event = json.loads(lines[0])
    assert result["event"] == "probe"
    return result


def segments_with_key(p: Event, key: int) -> list[Event]:
    return [s for s in p["segments"] if s["key"] == key]


# ==== tests ====


def test_image_builds_small_and_rebuild_is_a_noop(engine: Any, shmlab_image: str) -> None:
    again = build.ensure_image(engine)
    assert not again.built and again.image == shmlab_image
    assert again.seconds < 2.0
    assert engine.image_size(again.image) < 1_000_000
    assert engine.image_exists("labctl/shmlab:latest")


def test_sysv_shared_namespace_lifecycle(lab: Lab) -> None:
    writer = lab.start("writer", ["sysv-writer", "--count", "0", "--interval", "50ms"], ipc_mode="shareable")
    start = wait_event(writer, "start")
    attached = wait_event(writer, "attached")
    assert attached["key"] == 1234 and attached["size"] == 68 and attached["created"] is True
    # the holder keeps the namespace alive after the writer exits, and is where probes run
    holder = lab.start("holder", ["hold"], ipc_mode=f"container:{writer.id}")
    wait_event(holder, "holding")

    seen = probe(holder, "--ns", "--key", "1234", "--layout", "conn_stat")
    assert seen["ipcns"] == start["ipcns"]
    [seg] = segments_with_key(seen, 1234)
    assert seg["size"] == 68 and seg["perms"] == 0o666 and seg["dest"] is False and seg["nattch"] == 1
    assert seg["cpid"] == 0  # another pid namespace: /proc/sysvipc/shm shows 0
    assert seg["fields"]["ip"] == "127.0.0.1" and seg["fields"]["count"] >= 1

    reader = lab.start("reader", ["sysv-reader", "--reads", "5", "--interval", "100ms",
                                  "--expect-ip", "127.0.0.1", "--rmid"], ipc_mode=f"container:{writer.id}")
    assert exit_code(reader) == 0, reader.logs().decode()
    revs = events(reader)
    assert named(revs, "start")[0]["ipcns"] == start["ipcns"]
    reads = named(revs, "read")
    assert len(reads) == 5 and all(r["ip"] == "127.0.0.1" for r in reads)
    counts = [r["count"] for r in reads]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    assert named(revs, "removed") and named(revs, "done")

    # the writer notices SHM_DEST, detaches and exits 0 on its own
    assert exit_code(writer) == 0, writer.logs().decode()
    wevs = events(writer)
    assert named(wevs, "marked") and named(wevs, "detached") and named(wevs, "done")

    # last detach gone: the segment is destroyed (lazily: poll)
    assert wait_until(lambda: not segments_with_key(probe(holder, "--segments"), 1234), 10.0)
    holder.stop(timeout=10)
    assert exit_code(holder) == 0


def test_private_reader_gets_enoent(lab: Lab) -> None:
    reader = lab.start("reader", ["sysv-reader"], ipc_mode="private")
    assert exit_code(reader) == 10
    [err] = named(events(reader), "error")
    assert err["call"] == "shmget" and err["errno"] == "ENOENT" and err["exit"] == 10


def test_sysv_writer_excl_refuses_a_segment_it_did_not_create(lab: Lab) -> None:
    first = lab.start("first", ["sysv-writer", "--count", "0", "--interval", "50ms"], ipc_mode="shareable")
    assert wait_event(first, "attached")["created"] is True
    second = lab.start("second", ["sysv-writer", "--excl", "--count", "1"], ipc_mode=f"container:{first.id}")
    assert exit_code(second) == 10, second.logs().decode()
    [err] = named(events(second), "error")
    assert err["call"] == "shmget" and err["errno"] == "EEXIST" and err["exit"] == 10
    # without --excl the same writer attaches the first's segment (created false)
    third = lab.start("third", ["sysv-writer", "--count", "1"], ipc_mode=f"container:{first.id}")
    assert exit_code(third) == 0 and named(events(third), "attached")[0]["created"] is False


def test_devshm_fill_path_writes_into_any_file_and_reports_enospc(lab: Lab) -> None:
    ok = lab.start("ok", ["devshm-fill", "--path", "/scratch/blob", "--size", "256k", "--hold", "detached"],
                   tmpfs={"/scratch": "size=1m,mode=1777"})
    filled = wait_event(ok, "filled")
    assert filled["path"] == "/scratch/blob" and filled["size"] == 256 * 1024 and "name" not in filled
    st = probe(ok, "--stat", "/scratch/blob")["stat"]
    assert st["exists"] and st["size"] == 256 * 1024 and "gid" in st
    full = lab.start("full", ["devshm-fill", "--path", "/scratch/blob", "--size", "2m"],
                     tmpfs={"/scratch": "size=1m,mode=1777"})
    assert exit_code(full) == 29, full.logs().decode()
    [err] = named(events(full), "error")
    assert err["call"] == "write" and err["errno"] == "ENOSPC"


def test_posix_reader_unlink_removes_a_name_it_only_attached(lab: Lab) -> None:
    writer = lab.start("writer", ["posix-writer", "--name", "/conn_stat", "--count", "0", "--interval", "50ms"],
                       ipc_mode="shareable")
    wait_event(writer, "mapped")
    reader = lab.start("reader", ["posix-reader", "--name", "/conn_stat", "--reads", "2", "--unlink"],
                       ipc_mode=f"container:{writer.id}")
    assert exit_code(reader) == 0, reader.logs().decode()
    assert named(events(reader), "unlinked")[0]["name"] == "/conn_stat"
    assert probe(writer, "--stat", "/dev/shm/conn_stat")["stat"]["exists"] is False


def test_mmap_pair_over_shared_volume(lab: Lab) -> None:
    vol = lab.volume("data")
    mounts = {vol: {"bind": "/data", "mode": "rw"}}
    writer = lab.start("writer", ["mmap-writer", "--path", "/data/conn", "--count", "0", "--interval", "50ms"],
                       volumes=mounts)
    reader = lab.start("reader", ["mmap-reader", "--path", "/data/conn", "--wait", "10s", "--until", "5",
                                  "--timeout", "10s", "--interval", "50ms", "--expect-ip", "127.0.0.1"],
                       volumes=mounts)
    assert exit_code(reader) == 0, reader.logs().decode()
    revs = events(reader)
    opened_w = wait_event(writer, "opened")
    [opened_r] = named(revs, "opened")
    assert opened_r["ino"] == opened_w["ino"]  # the same file, not a copy
    reads = named(revs, "read")
    assert reads[-1]["count"] >= 5 and all(r["ip"] == "127.0.0.1" for r in reads)
    writer.stop(timeout=10)
    assert exit_code(writer) == 0
    assert named(events(writer), "unmapped")


def test_docker_stop_is_handled(lab: Lab) -> None:
    writer = lab.start("writer", ["sysv-writer", "--count", "0", "--interval", "1s"], ipc_mode="private")
    wait_event(writer, "wrote")
    t0 = time.monotonic()
    writer.stop(timeout=10)
    elapsed = time.monotonic() - t0
    print(f"docker stop of a sysv-writer took {elapsed:.3f}s")  # measured, not asserted
    assert exit_code(writer) == 0
    evs = events(writer)
    assert named(evs, "signal")[0]["signal"] == "SIGTERM"
    assert named(evs, "detached") and named(evs, "done")[0]["exit"] == 0


def test_hold_then_probe_in_a_scratch_image(lab: Lab) -> None:
    holder = lab.start("holder", ["hold"], ipc_mode="shareable")
    start = wait_event(holder, "start")
    p = probe(holder, "--ns", "--devshm", "--stat", "/etc/shmlab-key", "--ftok", "/etc/shmlab-key",
              "--proj", "1")
    assert p["ipcns"] == start["ipcns"] and p["devshm"] == []
    assert p["stat"]["exists"] is True and p["stat"]["size"] > 0
    assert isinstance(p["ftok"]["key"], int)
    holder.stop(timeout=10)
    assert exit_code(holder) == 0


def test_create_in_the_wrong_namespace_is_a_silent_fresh_segment(lab: Lab) -> None:
    """The tutorial's IPC_CREAT reader: no error, a zeroed segment, so --until times out (30)."""
    reader = lab.start("reader", ["sysv-reader", "--create", "--until", "1", "--timeout", "300ms",
                                  "--interval", "50ms"], ipc_mode="private")
    assert exit_code(reader) == 30
    evs = events(reader)
    assert named(evs, "attached")[0]["created"] is True
    assert all(r["count"] == 0 and r["ip"] == "" for r in named(evs, "read"))
    [err] = named(evs, "error")
    assert err["errno"] == "ETIMEDOUT" and err["exit"] == 30


def test_expect_ip_mismatch_exits_31(lab: Lab) -> None:
    reader = lab.start("reader", ["sysv-reader", "--create", "--reads", "1", "--expect-ip", "10.0.0.1"],
                       ipc_mode="private")
    assert exit_code(reader) == 31
    [err] = named(events(reader), "error")
    assert err["call"] == "expect-ip" and err["exit"] == 31


def test_sysv_reader_wait_retries_enoent_until_the_segment_exists(lab: Lab) -> None:
    # the reader starts first (a pod's start-order race) and waits; the writer comes later
    reader = lab.start("reader", ["sysv-reader", "--wait", "15s", "--reads", "3", "--interval", "50ms"],
                       ipc_mode="shareable")
    wait_event(reader, "start")
    writer = lab.start("writer", ["sysv-writer", "--count", "0", "--interval", "30ms"],
                       ipc_mode=f"container:{reader.id}")
    assert exit_code(reader) == 0, reader.logs().decode()
    reads = named(events(reader), "read")
    assert len(reads) == 3 and all(r["ip"] == "127.0.0.1" for r in reads)
    assert named(events(writer), "attached")[0]["created"] is True


def test_sysv_reader_wait_gives_up_with_enoent_at_its_deadline(lab: Lab) -> None:
    reader = lab.start("reader", ["sysv-reader", "--wait", "300ms"], ipc_mode="private")
    assert exit_code(reader) == 10
    [err] = named(events(reader), "error")
    assert err["call"] == "shmget" and err["errno"] == "ENOENT"
    assert err["t_ms"] >= 300  # it retried until the deadline, not once


def test_mmap_reader_wait_waits_for_the_full_size(lab: Lab) -> None:
    # the writer's ftruncate comes 1 s after its open: the SIGBUS window a pod's reader hits
    vol = lab.volume("data")
    mounts = {vol: {"bind": "/data", "mode": "rw"}}
    writer = lab.start("writer", ["mmap-writer", "--path", "/data/conn", "--truncate-delay", "1s",
                                  "--count", "0", "--interval", "30ms"], volumes=mounts)
    wait_event(writer, "opened")
    reader = lab.start("reader", ["mmap-reader", "--path", "/data/conn", "--wait", "15s", "--reads", "3",
                                  "--interval", "50ms"], volumes=mounts)
    assert exit_code(reader) == 0, reader.logs().decode()
    revs = events(reader)
    assert named(revs, "opened")[0]["size"] == 68
    assert all(r["ip"] == "127.0.0.1" for r in named(revs, "read"))
