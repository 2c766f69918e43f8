"""labctl export k8s: each mapping rule, each refusal (exit 2, located), and every exportable
library scenario validated offline against the Kubernetes OpenAPI schema (kubernetes-validate)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from labctl import cli
from labctl.errors import ScenarioErrors
from labctl.export.k8s import default_image, manifests, render
from labctl.scenario import load_file, load_text

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))
# Pinned: native sidecars (restartPolicy in an init container) are in the schema from 1.28;
# 1.30 is the first release where they are on by default and no longer new.
K8S_VERSION = "1.30.0"
# What the library holds that a Pod cannot express, and why (the refusal must say so).
REFUSED = {
    "ipc-none": "'none' (no IPC namespace, no /dev/shm)",
    "join-private-donor": "joining 'donor', whose IPC namespace is private",
    "default-ipc-mode": "joining 'donor', whose IPC namespace is private",
    "ftok-shared-file": "waiting for 'keymaker' (another pod) to exit",
    "donor-restart-rejoin": "the timeline's 'restart' of 'donor'",
    "donor-restart-splits-sharing": "the timeline's 'restart' of 'donor'",
    "pause-freezes-writer": "the timeline's 'pause' of 'writer'",
    "private-segments-rmid-forced": "the timeline's 'kill' of 'app'",
    "sigkill-leaks-private-segments": "the timeline's 'kill' of 'app'",
    "sigterm-cleans-sigkill-leaks": "the timeline's 'stop' of 'polite'",
    "posix-unlink-at-exit": "'consumer' must exit before the pod's containers start",
    "posix-attach-keeps-name": "'consumer' must exit before the pod's containers start",
    "posix-umask-podman": "umask (a Pod's securityContext has no umask",
}
IMAGE = "labctl/shmlab:0123456789ab"


def scenario(body: str, name: str = "t"):
    head = f"version: 1\nname: {name}\ndescription: a test\n"
    return load_text(head + textwrap.dedent(body), file="t.yaml")


def pods_of(objs: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "Pod"}


def containers(pod: dict) -> dict[str, dict]:
    spec = pod["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


PAIR = """
containers:
  writer: {workload: sysv-writer, ipc: shareable, args: [--hold, detached]}
  reader: {workload: sysv-reader, ipc: "container:writer", after: {writer: attached}}
checks:
  - exit: {container: reader, code: 0}
"""


# ---- grouping by IPC namespace


def test_a_donor_and_its_joiner_share_one_pod() -> None:
    objs = manifests(scenario(PAIR), image=IMAGE)
    assert [o["kind"] for o in objs] == ["Pod"]
    pod = objs[0]
    assert pod["metadata"]["name"] == "t-writer"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["writer", "reader"]
    assert "hostIPC" not in pod["spec"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["activeDeadlineSeconds"] == 120


def test_private_containers_get_a_pod_each() -> None:
    objs = manifests(load_file(str(ROOT / "scenarios/sysv-both-private.yaml")), image=IMAGE)
    pods = pods_of(objs)
    assert len(pods) == 2
    assert all(len(p["spec"]["containers"]) == 1 for p in pods.values())


def test_host_ipc_is_host_ipc_true() -> None:
    s = scenario("""
    containers:
      writer: {workload: sysv-writer, ipc: host}
      reader: {workload: sysv-reader, ipc: host, after: {writer: attached}}
    checks:
      - exit: {container: reader, code: 0}
    """)
    pods = pods_of(manifests(s, image=IMAGE))
    assert len(pods) == 2 and all(p["spec"]["hostIPC"] is True for p in pods.values())
    # both in the node's namespace: the reader can see the segment, so it waits for it
    assert "--wait" in containers(pods["t-reader"])["reader"]["args"]


def test_shm_size_is_a_memory_empty_dir_at_dev_shm_in_every_container() -> None:
    s = scenario("""
    containers:
      writer: {workload: posix-writer, ipc: shareable, shm_size: 128m, args: [--name, /x]}
      reader: {workload: posix-reader, ipc: "container:writer", args: [--name, /x], after: {writer: mapped}}
    checks:
      - exit: {container: reader, code: 0}
    """)
    pod = manifests(s, image=IMAGE)[0]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}} in pod["spec"]["volumes"]
    for c in containers(pod).values():
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_no_shm_size_mounts_nothing_at_dev_shm() -> None:
    pod = manifests(scenario(PAIR), image=IMAGE)[0]
    assert "volumes" not in pod["spec"]


def test_ipc_sysctls_are_the_pods() -> None:
    s = scenario("""
    containers:
      writer: {workload: sysv-writer, ipc: shareable, sysctls: {kernel.shmmax: "4096"}}
    checks:
      - exit: {container: writer, code: 0}
    """)
    pod = manifests(s, image=IMAGE)[0]
    assert pod["spec"]["securityContext"]["sysctls"] == [{"name": "kernel.shmmax", "value": "4096"}]


def test_volume_within_one_pod_is_an_empty_dir_tmpfs_volume_in_memory() -> None:
    s = scenario("""
    volumes:
      data: {}
      fast: {type: tmpfs-volume, size: 16m}
    containers:
      writer: {workload: mmap-writer, ipc: shareable, args: [--path, /d/f], volumes: ["data:/d", "fast:/f"]}
      reader: {workload: mmap-reader, ipc: "container:writer", args: [--path, /d/f],
               volumes: ["data:/d:ro"], tmpfs: [/scratch], after: {writer: mapped}}
    checks:
      - exit: {container: reader, code: 0}
    """)
    objs = manifests(s, image=IMAGE)
    assert [o["kind"] for o in objs] == ["Pod"]
    vols = {v["name"]: v for v in objs[0]["spec"]["volumes"]}
    assert vols["vol-data"] == {"name": "vol-data", "emptyDir": {}}
    assert vols["vol-fast"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert vols["tmp-reader-1"]["emptyDir"] == {"medium": "Memory"}
    r = containers(objs[0])["reader"]
    assert {"name": "vol-data", "mountPath": "/d", "readOnly": True} in r["volumeMounts"]
    assert {"name": "tmp-reader-1", "mountPath": "/scratch"} in r["volumeMounts"]


def test_volume_of_several_pods_is_a_claim_and_the_pods_share_a_node() -> None:
    objs = manifests(load_file(str(ROOT / "scenarios/mmap-volume.yaml")), image=IMAGE)
    assert [o["kind"] for o in objs] == ["PersistentVolumeClaim", "Pod", "Pod"]
    claim = objs[0]
    assert claim["metadata"]["name"] == "labctl-mmap-volume-data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for pod in objs[1:]:
        assert {"name": "vol-data", "persistentVolumeClaim": {"claimName": "labctl-mmap-volume-data"}} \
            in pod["spec"]["volumes"]
        term = pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"]["io.labctl.scenario"] == "mmap-volume"
    # the reader shares the volume with the writer: it waits for the file, sized
    reader = containers(pods_of(objs)["mmap-volume-reader"])["reader"]
    assert "--wait" in reader["args"]


# ---- after


def test_after_an_event_is_a_startup_wait_for_a_reader() -> None:
    text = render(scenario(PAIR), image=IMAGE)
    pod = manifests(scenario(PAIR), image=IMAGE)[0]
    assert containers(pod)["reader"]["args"][-2:] == ["--wait", "30s"]
    assert "initContainers" not in pod["spec"]
    assert "here it waits itself (--wait)" in text


def test_an_explicit_wait_is_kept() -> None:
    s = scenario(PAIR.replace("after: {writer: attached}", "args: [--wait, 3s], after: {writer: attached}"))
    args = containers(manifests(s, image=IMAGE)[0])["reader"]["args"]
    assert args.count("--wait") == 1 and args[-1] == "3s"


def test_after_in_another_pod_sharing_nothing_is_no_wait() -> None:
    objs = manifests(load_file(str(ROOT / "scenarios/posix-shareable.yaml")), image=IMAGE)
    outsider = containers(pods_of(objs)["posix-shareable-outsider"])["outsider"]
    assert "--wait" not in outsider["args"]
    assert "shares nothing with writer's" in render(load_file(str(ROOT / "scenarios/posix-shareable.yaml")))


def test_a_writer_cannot_wait_and_the_file_says_so() -> None:
    s = scenario("""
    containers:
      a: {workload: sysv-writer, ipc: shareable}
      b: {workload: sysv-writer, ipc: "container:a", after: {a: attached}}
    checks:
      - exit: {container: b, code: 0}
    """)
    assert "--wait" not in containers(manifests(s, image=IMAGE)[0])["b"]["args"]
    assert "Kubernetes starts it with the pod (no wait)" in render(s, image=IMAGE)


def test_after_exited_in_the_pod_is_an_init_container() -> None:
    objs = manifests(load_file(str(ROOT / "scenarios/sysv-msg-sem-joined.yaml")), image=IMAGE)
    pod = objs[0]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["sender", "counter-a"]
    assert not any("restartPolicy" in c for c in pod["spec"]["initContainers"])
    assert [c["name"] for c in pod["spec"]["containers"]] == ["ns", "receiver", "counter-b"]


def test_sidecar_mode_makes_the_awaited_container_a_native_sidecar() -> None:
    pod = manifests(scenario(PAIR), image=IMAGE, after="sidecar")[0]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["writer"]
    assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["reader"]
    assert "--wait" in pod["spec"]["containers"][0]["args"]  # the sidecar only orders the start


# ---- labels, image, hardening


def test_labels_and_image() -> None:
    pod = manifests(scenario(PAIR), image=IMAGE)[0]
    assert pod["metadata"]["labels"] == {"io.labctl.managed": "true", "io.labctl.run-id": "export",
                                         "io.labctl.scenario": "t", "io.labctl.role": "writer"}
    for c in containers(pod).values():
        assert c["image"] == IMAGE and c["imagePullPolicy"] == "IfNotPresent"


def test_run_id_labels_and_prefixes_names() -> None:
    objs = manifests(load_file(str(ROOT / "scenarios/mmap-volume.yaml")), image=IMAGE, run_id="0123456789abcdef")
    assert objs[0]["metadata"]["name"] == "labctl-01234567-mmap-volume-data"
    assert set(pods_of(objs)) == {"01234567-mmap-volume-writer", "01234567-mmap-volume-reader"}
    assert all(o["metadata"]["labels"]["io.labctl.run-id"] == "0123456789abcdef" for o in objs)


def test_user_labels_ride_along_and_long_names_stay_dns_labels() -> None:
    s = scenario(PAIR.replace("ipc: shareable,", "ipc: shareable, labels: {team: ipc},"), name="n" * 60)
    pod = manifests(s, image=IMAGE)[0]
    assert pod["metadata"]["labels"]["team"] == "ipc"
    assert len(pod["metadata"]["name"]) <= 63


def test_hardened_security_context() -> None:
    s = scenario("""
    containers:
      w: {workload: sysv-writer, ipc: shareable}
      u: {workload: sysv-reader, ipc: "container:w", user: "1000:1001"}
    checks:
      - exit: {container: u, code: 0}
    """)
    cs = containers(manifests(s, image=IMAGE)[0])
    assert cs["w"]["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        "runAsUser": 65534, "runAsNonRoot": True, "runAsGroup": 65534}
    assert (cs["u"]["securityContext"]["runAsUser"], cs["u"]["securityContext"]["runAsGroup"]) == (1000, 1001)
    for c in cs.values():
        assert c["resources"] == {"limits": {"memory": "256Mi"}}


def test_default_image_is_the_content_hashed_build_ref() -> None:
    import re

    assert re.fullmatch(r"labctl/shmlab:[0-9a-f]{12}", default_image())


# ---- refusals: located, with the reason, exit 2 and nothing on stdout


@pytest.mark.parametrize(("body", "where", "why"), [
    ("""
    containers:
      a: {workload: posix-writer, ipc: none, args: [--name, /x]}
    """, "t.yaml:6:6: containers.a.ipc:", "'none' (no IPC namespace, no /dev/shm)"),
    ("""
    containers:
      a: {workload: sysv-writer}
      b: {workload: sysv-reader, ipc: "container:a"}
    """, "t.yaml:7:6: containers.b.ipc:", "joining 'a', whose IPC namespace is private"),
    ("""
    containers:
      a: {workload: sysv-writer, ipc: shareable}
      b: {workload: sysv-writer, ipc: "container:a", shm_size: 1m}
      c: {workload: sysv-writer, ipc: "container:a", shm_size: 2m}
    """, "t.yaml:8:6: containers.c.shm_size:", "one pod has one /dev/shm"),
    ("""
    containers:
      a: {workload: sysv-writer, ipc: shareable}
      b: {workload: sysv-writer, ipc: "container:a", sysctls: {kernel.shmmax: "1"}}
      c: {workload: sysv-writer, ipc: "container:a", sysctls: {kernel.shmmax: "2"}}
    """, "t.yaml:8:6: containers.c.sysctls:", "set once for the pod"),
    ("""
    containers:
      a: {workload: sysv-writer, ipc: shareable}
      b: {workload: sysv-writer, after: {a: exited}}
    """, "containers.b.after:", "waiting for 'a' (another pod) to exit"),
    ("""
    containers:
      a: {workload: sysv-writer, ipc: shareable}
      x: {workload: sysv-writer, ipc: "container:a", after: {y: started}}
      y: {workload: sysv-writer, ipc: "container:a"}
      z: {workload: sysv-writer, ipc: "container:a", after: {x: exited}}
    """, "containers.x.after:", "'x' must exit before the pod's containers start"),
])
def test_refusals(body: str, where: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = "version: 1\nname: t\ndescription: a test\n" + textwrap.dedent(body) + \
        "checks:\n  - exit: {container: a, code: 0}\n"
    with pytest.raises(ScenarioErrors) as e:
        manifests(load_text(text, file="t.yaml"), image=IMAGE)
    msg = str(e.value)
    assert where in msg and why in msg and "Kubernetes cannot express this" in msg
    f = tmp_path / "t.yaml"
    f.write_text(text)
    assert cli.main(["export", "k8s", "--image", IMAGE, str(f)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and why in err and "Traceback" not in err


def test_cli_refuses_privileged_opt_ins_never_but_devices_and_hostdirs(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "fixtures").mkdir()
    f = tmp_path / "h.yaml"
    f.write_text(textwrap.dedent("""\
        version: 1
        name: h
        description: a test
        volumes:
          fix: {type: hostdir, path: ./fixtures}
        containers:
          a: {workload: sysv-writer, volumes: ["fix:/fix"]}
        checks:
          - exit: {container: a, code: 0}
        """))
    assert cli.main(["export", "k8s", "--image", IMAGE, str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:7:6: containers.a.volumes:" in err and "directory of this machine" in err


def test_cli_prints_every_scenario_as_one_stream(capsys: pytest.CaptureFixture) -> None:
    files = [str(ROOT / "scenarios/sysv-shareable.yaml"), str(ROOT / "scenarios/mmap-volume.yaml")]
    assert cli.main(["export", "k8s", "--image", IMAGE, *files]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert [d["kind"] for d in docs] == ["Pod", "PersistentVolumeClaim", "Pod", "Pod"]


# ---- the library against the Kubernetes OpenAPI schema


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
@pytest.mark.parametrize("after", ["wait", "sidecar"])
def test_library_validates_against_the_kubernetes_schema(path: Path, after: str) -> None:
    s = load_file(str(path))
    if s.name in REFUSED:
        with pytest.raises(ScenarioErrors, match=REFUSED[s.name].replace("(", r"\(").replace(")", r"\)")):
            manifests(s, image=IMAGE, after=after)  # type: ignore[arg-type]
        return
    text = render(s, image=IMAGE, after=after)  # type: ignore[arg-type]
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs and any(d["kind"] == "Pod" for d in docs)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_can_fail() -> None:
    pod = manifests(scenario(PAIR), image=IMAGE)[0]
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True  # a typo'd key
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_platform_containers_get_their_platforms_image() -> None:
    s = load_file(str(ROOT / "scenarios/arm64-amd64-shared.yaml"))
    objs = manifests(s, image=IMAGE, platform_images={"linux/arm64": "labctl/shmlab:feedfeedfeed-arm64"})
    images = {c["name"]: c["image"] for p in pods_of(objs).values() for c in containers(p).values()}
    assert images == {"writer": "labctl/shmlab:feedfeedfeed-arm64", "reader": IMAGE}
    assert "runs linux/arm64 code" in render(s, image=IMAGE)
    # without a ref for the platform: the native ref with the platform's suffix, as labctl tags them
    objs = manifests(s, image="labctl/shmlab:latest")
    images = {c["name"]: c["image"] for p in pods_of(objs).values() for c in containers(p).values()}
    assert images["writer"] == "labctl/shmlab:latest-arm64"
    import re

    assert re.fullmatch(r"labctl/shmlab:[0-9a-f]{12}-arm64", default_image("linux/arm64"))


def test_timeline_memory_and_restart_policy() -> None:
    s = scenario("""
    containers:
      holder: {workload: hold, ipc: shareable}
      app: {workload: sysv-writer, ipc: "container:holder", restart: "on-failure:3", memory: 48m}
    checks:
      - exit: {container: app, code: 0}
    """)
    pod = manifests(s, image=IMAGE)[0]
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    cs = containers(pod)
    assert cs["app"]["resources"]["limits"]["memory"] == "48Mi"
    assert cs["holder"]["resources"]["limits"]["memory"] == "256Mi"
    text = render(s, image=IMAGE)
    assert "a Pod has no retry count" in text and "applies to every container of the pod" in text


@pytest.mark.parametrize(("body", "why"), [
    ("""
    containers:
      a: {workload: sysv-writer, ipc: shareable, restart: always}
      b: {workload: sysv-writer, ipc: "container:a", restart: on-failure}
    checks:
      - exit: {container: a, code: 0}
    """, "the restart policy of a pod is one for all its containers"),
    ("""
    containers:
      a: {workload: sysv-writer, start: false}
    steps:
      - start: {container: a}
    checks:
      - exit: {container: a, code: 0}
    """, "the timeline's 'start' of 'a'"),
])
def test_timeline_refusals(body: str, why: str) -> None:
    with pytest.raises(ScenarioErrors, match=why):
        manifests(scenario(body), image=IMAGE)
