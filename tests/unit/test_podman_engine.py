"""Podman's differences as the runtime hides them, without an engine: tmpfs sizes, the
removal order, engine names and where Podman's socket is looked for."""

from __future__ import annotations

import os
from types import SimpleNamespace

import docker.errors
import pytest

from labctl.runtime import lookup
from labctl.runtime.podman_engine import _ids, _joined, removal_order, tmpfs_options


def test_tmpfs_size_becomes_pages() -> None:
    assert tmpfs_options("mode=1777,size=16m", 4096) == "mode=1777,nr_blocks=4096"
    assert tmpfs_options("size=5000", 4096) == "nr_blocks=2"  # rounded up, never smaller
    assert tmpfs_options("mode=1777", 4096) == "mode=1777"
    assert tmpfs_options("size=1g,nr_inodes=10", 65536) == "nr_blocks=16384,nr_inodes=10"


def _c(name: str, ipc: str | None = None, net: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=f"id-{name}", name=name, attrs={"HostConfig": {"IpcMode": ipc, "NetworkMode": net}})


def test_joiners_are_removed_before_their_donors() -> None:
    donor, reader, probe = _c("donor", "shareable"), _c("reader", "container:id-donor"), _c("probe", "container:id-reader")
    netjoin = _c("net", net="container:donor")
    order = [c.name for c in removal_order([donor, reader, probe, netjoin], _joined, _ids)]
    assert order.index("probe") < order.index("reader") < order.index("donor")
    assert order.index("net") < order.index("donor") and sorted(order) == ["donor", "net", "probe", "reader"]


def test_podman_socket_rootful_then_rootless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert lookup.podman_candidates() == ["unix:///run/podman/podman.sock", "unix:///run/user/1000/podman/podman.sock"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lookup.podman_candidates()[0] == "unix:///run/user/1000/podman/podman.sock"
    assert "systemctl --user start podman.socket" in lookup.podman_start_hint()
    monkeypatch.setenv("CONTAINER_HOST", "unix:///tmp/p.sock")
    assert lookup.podman_candidates() == ["unix:///tmp/p.sock"]


def test_no_podman_socket_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from labctl.errors import EngineError
    from labctl.runtime import Engine

    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EngineError) as e:
        Engine.connect("podman")
    assert e.value.exit_code == 3 and "podman system service --time=0" in str(e.value)


def test_default_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    assert lookup.default_engine() == "docker"
    monkeypatch.setenv("CONTAINER_HOST", "unix:///run/podman/podman.sock")
    assert lookup.default_engine() == "podman"
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert lookup.default_engine() == "docker"  # DOCKER_HOST wins; connect() recognises a Podman behind it


class _ExitingAPI:
    """``inspect_container`` answering Podman's exit-race 500 ``fails`` times, then the document."""

    def __init__(self, fails: int, words: str = "read /proc/18577/cgroup: no such process") -> None:
        self.fails, self.words, self.calls = fails, words, 0

    def inspect_container(self, ref: str) -> dict:
        import requests

        self.calls += 1
        if self.calls <= self.fails:
            response = requests.Response()
            response.status_code = 500
            raise docker.errors.APIError("500 Server Error", response=response, explanation=self.words)
        return {"Id": ref, "State": {"Status": "exited"}}


def test_an_inspect_that_met_a_container_exiting_is_asked_again() -> None:
    from labctl.runtime.docker_calls import inspect

    api = _ExitingAPI(fails=2)
    assert inspect(api, "c0ffee")["State"]["Status"] == "exited"  # type: ignore[arg-type]
    assert api.calls == 3


def test_other_inspect_errors_and_a_race_that_lasts_are_raised() -> None:
    from labctl.runtime.docker_calls import inspect

    other = _ExitingAPI(fails=1, words="container state improper")
    with pytest.raises(docker.errors.APIError, match="500"):
        inspect(other, "c0ffee")  # type: ignore[arg-type]
    assert other.calls == 1
    lasting = _ExitingAPI(fails=100)
    with pytest.raises(docker.errors.APIError):
        inspect(lasting, "c0ffee")  # type: ignore[arg-type]
    assert lasting.calls == 6
