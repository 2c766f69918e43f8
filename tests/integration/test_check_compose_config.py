"""``labctl check`` sees the services Compose itself resolves: for each test project
(interpolation with .env and the environment, anchors, ``extends`` across files, several
``-f`` files merged, profiles, 2.4 syntax), the services in the topology equal what
``docker compose config`` (v2) prints, on every key the rules read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from labctl import stack
from tests.integration.compose_flavours import compose_command

pytestmark = pytest.mark.compose

DATA = Path(__file__).resolve().parents[1] / "data" / "check" / "compose"

PROJECTS = {
    "interp": (["interp/compose.yml"], {"MEM": "1g", "NAME": "stat"}, []),
    "interp-defaults": (["interp/compose.yml"], {}, []),
    "merge": (["merge/compose.yml", "merge/compose.prod.yml"], {}, []),
    "merge-debug-profile": (["merge/compose.yml", "merge/compose.prod.yml"], {}, ["debug"]),
    "v24": (["v24/docker-compose.yml"], {}, []),
}


def _size(v: object) -> int | None:
    return None if v is None else int(v)  # type: ignore[call-overload]


def from_compose(files: list[Path], env: dict[str, str], profiles: list[str]) -> dict[str, dict]:
    cmd = compose_command("v2").split()
    args = [*cmd, "--project-directory", str(files[0].parent)]
    for f in files:
        args += ["-f", str(f)]
    for p in profiles:
        args += ["--profile", p]
    base = {k: v for k, v in os.environ.items() if k not in ("MEM", "NAME", "COMPOSE_PROFILES", "SIZE", "IMAGE")}
    done = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={**base, **env}, check=False)
    assert done.returncode == 0, done.stderr
    out = {}
    for name, svc in json.loads(done.stdout)["services"].items():
        vols = svc.get("volumes") or []
        mem = svc.get("mem_limit") or (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
        out[name] = {
            "ipc": svc.get("ipc"),
            "shm_size": _size(svc.get("shm_size")),
            "memory": _size(mem),
            "user": svc.get("user"),
            "restart": svc.get("restart"),
            "runtime": svc.get("runtime"),
            "sysctls": {k: str(v) for k, v in (svc.get("sysctls") or {}).items()},
            "tmpfs": sorted([t.split(":")[0] for t in svc.get("tmpfs") or []]
                            + [v["target"] for v in vols if v["type"] == "tmpfs"]),
            "volumes": sorted((v["target"], v.get("source"), bool(v.get("read_only"))) for v in vols
                              if v["type"] != "tmpfs"),
            "command": [w.replace("$$", "$") for w in (svc.get("command") or [])],
            "environment": {k: v for k, v in (svc.get("environment") or {}).items()},
        }
    return out


def from_labctl(files: list[Path], env: dict[str, str], profiles: list[str]) -> dict[str, dict]:
    topo = stack.load(files=[str(f) for f in files], environ=env, profiles=profiles)
    out = {}
    for c in topo.containers:
        folder = files[0].parent
        vols = []
        for m in c.mounts:
            if m.kind == "tmpfs":
                continue
            src = m.source
            if m.kind == "bind" and src is not None:
                src = str((folder / src).resolve())
            vols.append((m.target.value, src, m.read_only))
        out[c.name] = {
            "ipc": c.ipc.value if c.ipc else None,
            "shm_size": c.shm_size.value if c.shm_size else None,
            "memory": c.memory.value if c.memory else None,
            "user": c.user.value if c.user else None,
            "restart": c.restart.value if c.restart else None,
            "runtime": c.runtime.value if c.runtime else None,
            "sysctls": {k.value: v for k, v in c.sysctls},
            "tmpfs": sorted(m.target.value for m in c.mounts if m.kind == "tmpfs"),
            "volumes": sorted(vols),
            "command": c.extra["command"],
            "environment": c.extra["environment"],
        }
    return out


@pytest.mark.parametrize("project", sorted(PROJECTS))
def test_services_equal_docker_compose_config(project: str) -> None:
    names, env, profiles = PROJECTS[project]
    files = [DATA / n for n in names]
    theirs = from_compose(files, env, profiles)
    ours = from_labctl(files, env, profiles)
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name
