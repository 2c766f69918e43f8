"""labctl.runtime.hostpaths: which paths the engine sees when labctl runs in a container or remotely."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.runtime import clean

from labctl.runtime import hostpaths

from labctl.runtime import labels

CID = "a" * 64


class FakeEngine:
    def __init__(self, mounts: list[tuple[str, str]] | None, running: bool | None = True) -> None:
        self.mounts = mounts
        self.running = running

    def container_mounts(self, ref: str) -> list[tuple[str, str]] | None:
        return self.mounts

    def container_running(self, ref: str) -> bool | None:
        return self.running


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hostpaths, "_views", {})
    monkeypatch.delenv("LABCTL_IN_CONTAINER", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    yield
    labels.set_owner_container(None)


def test_outside_a_container_a_local_engine_sees_every_path() -> None:
    v = hostpaths.view(FakeEngine(None))
    assert v.shared and v.to_engine("/tmp/x/../y") == "/tmp/y"


def test_a_remote_engine_sees_no_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://docker:2375")
    v = hostpaths.view(FakeEngine(None))
    assert not v.shared and v.to_engine("/tmp") is None


def test_in_a_container_paths_map_through_its_bind_mounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(f"1 2 0:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 x rw\n")
    real = hostpaths.own_container_id
    monkeypatch.setattr(hostpaths, "own_container_id", lambda: real(str(info)))
    monkeypatch.setenv("LABCTL_IN_CONTAINER", "1")
    v = hostpaths.view(FakeEngine([("/lab", "/srv/lab"), ("/lab/deep", "/elsewhere")]))
    assert v.container == CID
    assert v.to_engine("/lab/fixtures/a") == "/srv/lab/fixtures/a"
    assert v.to_engine("/lab/deep/x") == "/elsewhere/x"  # the longest mount wins
    assert v.to_engine("/laboratory") is None and v.to_engine("/tmp") is None
    # from now on what labctl creates names its container: a crash leaves a recognisable run
    assert labels.labels_for("r", "s", "role")[labels.OWNER_CONTAINER] == CID


def test_own_container_id_reads_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(f"1 2 0:1 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 x rw\n")
    assert hostpaths.own_container_id(str(info)) == CID
    info.write_text("1 2 0:1 / / rw - ext4 x rw\n")
    assert hostpaths.own_container_id(str(info)) is None


def test_a_crashed_labctl_container_makes_its_run_stale() -> None:
    owned = {labels.OWNER_CONTAINER: CID, labels.OWNER_PID: "1", labels.OWNER_HOST: "elsewhere"}
    assert clean._owner_alive(owned, FakeEngine(None, running=False)) is False
    assert clean._owner_alive(owned, FakeEngine(None, running=True)) is True
    # the engine cannot say: the old rule (another host's run counts as alive)
    assert clean._owner_alive(owned, FakeEngine(None, running=None)) is True
