"""The cleanup check's line for host IPC objects labctl leaves alone (they may be another
host process's): it names the exact commands that remove them."""

from __future__ import annotations

from labctl.runner.hostipc import host_objects, removal_commands, removal_hint

PROBE = {
    "segments": [{"key": 0x6C616203, "shmid": 98310, "uid": 1000, "gid": 1000}],
    "sems": [{"key": 0x6C616301, "semid": 7, "uid": 0, "gid": 0}],
    "queues": [{"key": 0x6C616302, "msqid": 32769, "uid": 0, "gid": 0}],
    "devshm": [{"name": "sensor"}],
    "mqueues": [{"name": "jobs", "uid": 0, "gid": 0}],
}


def test_a_semaphore_set_and_a_message_queue_give_one_ipcrm() -> None:
    objs = host_objects({"sems": PROBE["sems"], "queues": PROBE["queues"]})
    assert removal_commands(list(objs.values())) == ["ipcrm -s 7 -q 32769"]
    hint = removal_hint(list(objs.values()))
    assert hint is not None and hint.endswith("with: ipcrm -s 7 -q 32769")
    assert "another host process may own them" in hint


def test_every_kind_segments_first_then_the_posix_paths() -> None:
    objs = list(host_objects(PROBE).values())
    assert removal_commands(objs) == ["ipcrm -m 98310 -s 7 -q 32769", "rm /dev/shm/sensor /dev/mqueue/jobs"]
    assert removal_hint(objs).endswith("with: ipcrm -m 98310 -s 7 -q 32769 && rm /dev/shm/sensor /dev/mqueue/jobs")


def test_nothing_kept_no_hint() -> None:
    assert removal_commands([]) == [] and removal_hint([]) is None
