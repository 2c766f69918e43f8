"""``labctl import``: the generator on plain stacks, the Compose and Kubernetes readers, the
CLI, and (engine-free) the round trip of every library scenario through `labctl compose`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labctl import scenario as scen
from labctl.cli import main
from labctl.errors import ScenarioErrors
from labctl.export.compose import render_compose
from labctl.importer import Mount, Service, Stack, Volume, generate
from labctl.importer.from_compose import read_compose
from labctl.importer.from_k8s import read_k8s
from labctl.export.k8s import render as render_k8s
from labctl.scenario.model import Pos

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "import"
P = Pos("f.yml", 3, 5)


def svc(name: str, **kw) -> Service:
    kw.setdefault("image", "example/app:1")
    return Service(name=name, pos=P, **kw)


def gen(*services: Service, volumes: tuple[Volume, ...] = (), tmp: Path | None = None):
    stack = Stack("compose", "shop", "f.yml", tuple(services), volumes)
    g = generate(stack, out_dir=str(tmp or "."), command="labctl import compose f.yml")
    return g, yaml.safe_load(g.text)


def checks_of(doc: dict, kind: str) -> list[dict]:
    return [c[kind] for c in doc["checks"] if kind in c]


def test_groups_become_same_and_different_namespace_checks(tmp_path):
    g, doc = gen(svc("db", ipc="shareable", shm_size=128 << 20), svc("app", ipc="service:db"),
                 svc("cache"), tmp=tmp_path)
    same = checks_of(doc, "namespace")
    assert {"containers": ["db", "app"], "same": True} in same
    assert {"in": "db", "devshm_capacity": "128m"} in checks_of(doc, "objects")
    assert doc["checks"][-1] == {"name": "nothing left behind", "cleanup": {}}
    assert doc["containers"]["app"]["ipc"] == "container:db"
    # a container alone in its namespace joins a holder that keeps the namespace for the
    # probe (and its id unique) for the whole run, and says so
    assert doc["containers"]["cache-ipc"] == {"workload": "hold", "ipc": "shareable"}
    assert doc["containers"]["cache"]["ipc"] == "container:cache-ipc"
    assert {"containers": ["cache-ipc", "cache"], "same": True} in same
    assert {"containers": ["db", "cache-ipc"], "same": False} in same
    # unset, each engine has its default: Docker 64 MiB, Podman 64000 KiB, one check each
    shm = [c for c in doc["checks"] if c.get("objects", {}).get("in") == "cache-ipc"]
    assert [(c["engines"], c["objects"]["devshm_capacity"]) for c in shm] == [(["docker"], "64m"),
                                                                              (["podman"], "64000k")]
    assert "holds the IPC namespace and /dev/shm of cache" in g.text
    # with a restart policy it keeps its own namespace (a restart gives a new one), made
    # shareable so the probe may join it
    g, doc = gen(svc("db", restart="always", shm_size=8 << 20))
    assert doc["containers"]["db"]["ipc"] == "shareable" and "shareable here so labctl's probe" in g.text
    assert {"in": "db", "devshm_capacity": "8m"} in checks_of(doc, "objects")
    assert g.text.startswith("# yaml-language-server: $schema=")
    scen.load_text(g.text, str(tmp_path / "s.yaml"), base_dir=str(tmp_path))  # it validates


def test_service_settings_are_carried(tmp_path):
    g, doc = gen(svc("app", command=("serve", "--port", "1"), entrypoint=("/bin/app",), user="1000:1000",
                     memory=64 << 20, restart="on-failure:3", env=(("A", "1"),), read_only=None,
                     sysctls=(("kernel.shmmax", "65536"),), labels=(("team", "x"), ("io.labctl.role", "y")),
                     mounts=(Mount("tmpfs", None, "/scratch"),)), tmp=tmp_path)
    c = doc["containers"]["app"]
    assert c["image"] == "example/app:1" and c["command"] == ["serve", "--port", "1"]
    assert c["entrypoint"] == ["/bin/app"] and c["user"] == "1000:1000" and c["memory"] == "64m"
    assert c["restart"] == "on-failure:3" and c["env"] == {"A": "1"} and c["read_only"] is False
    assert c["sysctls"] == {"kernel.shmmax": "65536"} and c["labels"] == {"team": "x"}
    assert c["tmpfs"] == ["/scratch"]
    scen.load_text(g.text, "s.yaml", base_dir=str(tmp_path))


def test_shared_volume_gives_a_same_inode_check_and_bind_paths_are_relative(tmp_path):
    host = tmp_path / "data"
    vols = (Volume("shared"), Volume("bind-data", "bind", path=str(host)))
    g, doc = gen(svc("a", mounts=(Mount("volume", "shared", "/v"), Mount("bind", "bind-data", "/d"))),
                 svc("b", mounts=(Mount("volume", "shared", "/v", read_only=True), Mount("bind", "bind-data", "/e"))),
                 volumes=vols, tmp=tmp_path)
    assert doc["volumes"] == {"shared": {}, "bind-data": {"type": "hostdir", "path": "data"}}
    assert doc["containers"]["b"]["volumes"] == ["shared:/v:ro", "bind-data:/e"]
    assert checks_of(doc, "file") == [{"container": "b", "path": "/v", "same_as": "a"}]
    assert any("no shared-path check" in n.message and n.key == "services.b.volumes" for n in g.notes)


def test_workload_image_becomes_a_workload_and_drops_what_labctl_does_itself():
    g, doc = gen(svc("writer", image="labctl/shmlab:latest", ipc="shareable", user="65534:65534",
                     command=("sysv-writer", "--human", "--count", "5"), ready_events=("attached",),
                     env=(("SHMLAB_EVENT_DIR", "/run/labctl-events"),),
                     mounts=(Mount("tmpfs", None, "/run/labctl-events"),)),
                 svc("reader", image="labctl/shmlab:latest", ipc="service:writer", command=("sysv-reader",),
                     depends=(("writer", "healthy", P),)),
                 svc("labctl-prep", image="labctl/shmlab:latest", command=("prep", "--chmod", "1777", "/v/x")))
    w, r = doc["containers"]["writer"], doc["containers"]["reader"]
    assert w == {"workload": "sysv-writer", "args": ["--count", "5"], "ipc": "shareable", "read_only": False}
    assert r["after"] == {"writer": "attached"}
    assert "labctl-prep" not in doc["containers"]
    assert any("--human dropped" in n.message for n in g.notes)


def test_healthcheck_of_a_foreign_image_waits_for_start_and_says_so():
    g, doc = gen(svc("db", healthcheck=True), svc("app", depends=(("db", "healthy", P), ("db", "exited", P))))
    assert doc["containers"]["app"]["after"] == ["db", {"db": "exited"}]
    assert any("labctl has no healthchecks" in n.message for n in g.notes)


def test_joining_a_private_donor_is_kept_and_named():
    g, doc = gen(svc("donor", ipc="private"), svc("joiner", ipc="service:donor"))
    assert doc["containers"]["donor"]["ipc"] == "private"
    assert not checks_of(doc, "objects")
    assert any("non-shareable IPC" in n.message for n in g.notes)


def test_what_a_scenario_cannot_express_is_a_note_not_a_failure():
    g, doc = gen(svc("a", ipc="container:external", memory=1024, restart="sometimes", user="bad user!"),
                 svc("b", ipc="none", image="${UNSET}"))
    keys = {n.key for n in g.notes}
    assert {"services.a.ipc", "services.a.memory", "services.a.restart", "services.a.user", "services.b.image"} <= keys
    assert "b" not in doc["containers"] and "# b: not imported" in g.text
    assert doc["containers"]["a"] == {"image": "example/app:1", "ipc": "shareable", "read_only": False}


def test_nothing_runnable_leaves_no_containers():
    g, _ = gen(svc("a", image=None))
    assert not g.scenario["containers"]


def test_compose_extends_interpolation_env_file_and_positions():
    stack = read_compose(str(DATA / "compose.yml"), env={"MEMORY": "96m"})
    by = {s.name: s for s in stack.services}
    w, r, lo = by["writer"], by["reader"], by["loner"]
    assert w.image == "labctl/shmlab:latest"  # ${SHMLAB_IMAGE:-...} from base.yml
    assert w.command == ("sysv-writer", "--key", "4321", "--count", "0", "--interval", "50ms")  # .env KEY
    assert w.shm_size == 32 << 20 and w.memory == 96 << 20 and w.user == "65534:65534"
    assert r.ipc == "service:writer" and r.mounts[0].source == "data"  # extends: writer (same file)
    assert r.depends == (("writer", "started", r.depends[0][2]),)
    assert lo.mounts[0].read_only and lo.restart is None
    ports = next(n for n in stack.notes if n.key == "services.loner.ports")
    assert (Path(ports.pos.file).name, ports.pos.line, ports.pos.col) == ("compose.yml", 26, 5)


def test_compose_files_merge_and_unset_variables_are_noted(tmp_path):
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("services:\n  app: {image: x, shm_size: 8m, command: [run, $MISSING]}\n")
    b.write_text("services:\n  app: {shm_size: 16m, ipc: shareable}\n")
    stack = read_compose([str(a), str(b)], env={})
    (app,) = stack.services
    assert (app.image, app.shm_size, app.ipc, app.command) == ("x", 16 << 20, "shareable", ("run", ""))
    unset = [n for n in stack.notes if "MISSING" in n.message]
    assert unset and (unset[0].pos.line, unset[0].pos.file) == (2, str(a))


def test_compose_profiles_and_unreadable_files(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("services:\n  a: {image: x}\n  dbg: {image: y, profiles: [debug]}\n")
    stack = read_compose(str(f))
    assert [s.name for s in stack.services] == ["a"]
    net = next(n for n in stack.notes if n.key == "services.a")
    assert "network none" in net.message and (net.pos.line, net.pos.col) == (2, 6)
    assert [s.name for s in read_compose(str(f), profiles=("debug",)).services] == ["a", "dbg"]
    f.write_text("services: {}\n")
    with pytest.raises(Exception, match="no services"):
        read_compose(str(f))


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: shop}
spec:
  restartPolicy: OnFailure
  securityContext: {runAsUser: 1000, runAsGroup: 1000, sysctls: [{name: kernel.shmmax, value: "65536"}]}
  initContainers:
  - {name: init, image: example/init:1}
  containers:
  - name: app
    image: example/app:1
    command: [/app]
    args: [--serve]
    resources: {limits: {memory: 64Mi}}
    volumeMounts: [{name: dshm, mountPath: /dev/shm}, {name: cache, mountPath: /cache}]
  - name: side
    image: example/side:1
    volumeMounts: [{name: cache, mountPath: /cache, readOnly: true}, {name: cfg, mountPath: /etc/cfg}]
  volumes:
  - {name: dshm, emptyDir: {medium: Memory, sizeLimit: 32Mi}}
  - {name: cache, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  template:
    spec:
      containers: [{name: app, image: example/other:1}]
"""


def test_k8s_pods_get_a_holder_and_their_settings(tmp_path):
    f = tmp_path / "pods.yaml"
    f.write_text(POD)
    stack = read_k8s(str(f))
    g = generate(stack, out_dir=str(tmp_path))
    doc = yaml.safe_load(g.text)
    c = doc["containers"]
    assert c["shop"] == {"workload": "hold", "ipc": "shareable", "shm_size": "32m",
                         "sysctls": {"kernel.shmmax": "65536"}}
    assert c["app"]["entrypoint"] == ["/app"] and c["app"]["command"] == ["--serve"]
    assert c["app"]["user"] == "1000:1000" and c["app"]["memory"] == "64m" and c["app"]["restart"] == "on-failure"
    assert c["app"]["after"] == {"init": "exited"} and c["init"]["ipc"] == "container:shop"
    assert c["side"]["volumes"] == ["shop-cache:/cache:ro"]
    assert c["app-2"]["ipc"] == "container:other"  # the Deployment's pod; the name was taken
    assert {"containers": ["shop", "side"], "same": True} in checks_of(doc, "namespace")
    assert {"containers": ["shop", "other"], "same": False} in checks_of(doc, "namespace")
    assert {"in": "shop", "devshm_capacity": "32m"} in checks_of(doc, "objects")
    assert any(n.key == "volumes.cfg" and n.pos.line == 22 for n in g.notes)
    scen.load_text(g.text, str(tmp_path / "s.yaml"), base_dir=str(tmp_path))


def test_cli_writes_file_and_schema_and_refuses_nothing_runnable(tmp_path, capsys):
    out = tmp_path / "lab" / "s.yaml"
    out.parent.mkdir()
    assert main(["import", "compose", str(DATA / "compose.yml"), "-o", str(out), "--name", "shop"]) == 0
    assert (out.parent / "scenario.schema.json").exists()
    assert scen.load_file(str(out)).name == "shop"
    err = capsys.readouterr().err
    assert "compose.yml:26:5: services.loner.ports: not carried" in err
    bad = tmp_path / "c.yml"
    bad.write_text("services:\n  a: {build: .}\n")
    assert main(["import", "compose", str(bad)]) == 2
    assert "nothing runnable remains" in capsys.readouterr().err
    bad.write_text("services: [\n")
    assert main(["import", "compose", str(bad)]) == 2


LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_round_trip_of_every_library_scenario_validates(path, tmp_path):
    """import(compose(S)) loads for every scenario; import(export k8s(S)) where it exports."""
    s = scen.load_file(str(path))
    if s.engine_only:  # a key only some engines carry out (umask): both exports refuse it at the key
        with pytest.raises(ScenarioErrors, match="Compose cannot express this"):
            render_compose(s)
        return
    f = tmp_path / "c.yml"
    f.write_text(render_compose(s))
    g = generate(read_compose(str(f), env={}), out_dir=str(tmp_path))
    back = scen.load_text(g.text, str(tmp_path / "s.yaml"), base_dir=str(tmp_path))
    holders = {c.name for c in back.containers if c.workload == "hold" and c.name.endswith("-ipc")}
    assert {c.name for c in back.containers} - holders == {c.name for c in s.containers}
    for a in s.containers:  # the IPC grouping survives (a lone container joins its own holder)
        for b in s.containers:
            if "none" not in (a.ipc, b.ipc):
                assert (back.ipc_owner(a.name) == back.ipc_owner(b.name)) == (s.ipc_owner(a.name) == s.ipc_owner(b.name))
    try:
        text = render_k8s(s)
    except Exception:  # noqa: BLE001 - what a Pod cannot express: export refuses it
        return
    f.write_text(text)
    scen.load_text(generate(read_k8s(str(f)), out_dir=str(tmp_path)).text, "k.yaml", base_dir=str(tmp_path))
