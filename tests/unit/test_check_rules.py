"""Each rule of ``labctl check`` on hand-written files: Compose (spec syntax, as compose v2
writes it, and ``version: "2.4"`` syntax, as docker-compose 1.29 users write it) and
Kubernetes (a Pod and a Deployment), with the finding's line and column asserted; and the
fixed form of each file, with no finding of that rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from labctl import lint, stack


def where(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the ``nth`` occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def check(tmp_path: Path, text: str, name: str = "stack.yml") -> tuple[str, list[lint.Finding]]:
    text = textwrap.dedent(text).lstrip("\n")
    f = tmp_path / name
    f.write_text(text)
    return text, lint.run(stack.load([str(f)], environ={}))


def hits(findings: list[lint.Finding], rule: str) -> list[tuple[int, int]]:
    return [(f.line, f.col) for f in findings if f.rule == rule]


# ---------------------------------------------------------------- join-private-donor

def test_join_private_donor_compose_spec(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        services:
          donor:
            image: app
            ipc: private
          reader:
            image: app
            ipc: "service:donor"
        """)
    assert hits(fs, "join-private-donor") == [where(text, '"service:donor"')]
    assert "non-shareable IPC" in fs[0].message


def test_join_private_donor_compose_129_default_mode(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        version: "2.4"
        services:
          donor:
            image: app
          reader:
            image: app
            ipc: service:donor
        """)
    assert hits(fs, "join-private-donor") == [where(text, "service:donor")]
    assert "no ipc: key" in fs[0].message


def test_join_by_container_name_and_joiner_of_joiner(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        services:
          holder:
            image: app
            container_name: the-holder
            ipc: shareable
          a:
            image: app
            ipc: container:the-holder
          b:
            image: app
            ipc: service:a
        """)
    assert hits(fs, "join-private-donor") == [where(text, "service:a")]


def test_join_shareable_donor_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          donor: {image: app, ipc: shareable}
          reader: {image: app, ipc: "service:donor"}
        """)
    assert fs == []


# ---------------------------------------------------------------- shm-size-on-joiner

@pytest.mark.parametrize("header", ["", 'version: "2.4"\n'])
def test_shm_size_on_joiner(tmp_path: Path, header: str) -> None:
    text, fs = check(tmp_path, header + textwrap.dedent("""
        services:
          donor:
            image: app
            ipc: shareable
            shm_size: 256m
          reader:
            image: app
            ipc: service:donor
            shm_size: 1g
        """))
    assert hits(fs, "shm-size-on-joiner") == [where(text, "1g")]
    assert "256 MiB from 'donor'" in fs[0].message


# ---------------------------------------------------------------- memory-below-shm

def test_memory_below_shm_compose_spec_declared_use(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        services:
          writer:
            image: labctl/shmlab
            command: [devshm-fill, --name, /big, --size, 100m]
            shm_size: 256m
            deploy:
              resources:
                limits:
                  memory: 48m
        """)
    assert hits(fs, "memory-below-shm") == [where(text, "48m")]


def test_memory_below_shm_compose_129_own_shm_size(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        version: "2.4"
        services:
          writer:
            image: app
            mem_limit: 48m
            shm_size: 256m
        """)
    assert hits(fs, "memory-below-shm") == [where(text, "48m")]


def test_memory_enough_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          writer:
            image: app
            mem_limit: 512m
            shm_size: 256m
            labels: {io.labctl.shm-use: 100m}
        """)
    assert hits(fs, "memory-below-shm") == []


POD_SHM = """
    apiVersion: v1
    kind: Pod
    metadata: {name: p}
    spec:
      containers:
      - name: writer
        image: app
        volumeMounts: [{name: dshm, mountPath: /dev/shm}]
        resources:
          limits:
            memory: 48Mi
      volumes:
      - name: dshm
        emptyDir: {medium: Memory, sizeLimit: 256Mi}
    """


def test_memory_below_shm_pod(tmp_path: Path) -> None:
    text, fs = check(tmp_path, POD_SHM, "pod.yaml")
    assert hits(fs, "memory-below-shm") == [where(text, "48Mi")]


def test_memory_below_shm_deployment(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          selector: {matchLabels: {app: d}}
          template:
            metadata: {labels: {app: d}}
            spec:
              containers:
              - name: writer
                image: app
                args: [devshm-fill, --size, 100m]
                volumeMounts: [{name: dshm, mountPath: /dev/shm}]
                resources: {limits: {memory: 64Mi}}
              volumes:
              - name: dshm
                emptyDir: {medium: Memory, sizeLimit: 1Gi}
        """, "deploy.yaml")
    assert hits(fs, "memory-below-shm") == [where(text, "64Mi")]


# ---------------------------------------------------------------- restart-policy-on-donor

@pytest.mark.parametrize("header", ["", 'version: "2.4"\n'])
def test_restart_policy_on_donor(tmp_path: Path, header: str) -> None:
    text, fs = check(tmp_path, header + textwrap.dedent("""
        services:
          donor:
            image: app
            ipc: shareable
            restart: unless-stopped
          reader:
            image: app
            ipc: service:donor
        """))
    assert hits(fs, "restart-policy-on-donor") == [where(text, "unless-stopped")]


def test_restart_policy_on_lone_donor_or_no_policy_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          donor: {image: app, ipc: shareable, restart: "no"}
          reader: {image: app, ipc: "service:donor"}
          alone: {image: app, ipc: shareable, restart: always}
        """)
    assert hits(fs, "restart-policy-on-donor") == []


# ---------------------------------------------------------------- host-ipc

def test_host_ipc_compose(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        services:
          app: {image: app, ipc: host}
        """)
    assert hits(fs, "host-ipc") == [where(text, "host}")]


def test_host_ipc_pod_and_deployment(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          hostIPC: true
          containers: [{name: a, image: app}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          template:
            spec:
              hostIPC: yes
              containers: [{name: a, image: app}]
        """, "pods.yaml")
    assert hits(fs, "host-ipc") == [where(text, "true"), where(text, "yes")]


# ---------------------------------------------------------------- devshm-too-small

@pytest.mark.parametrize("header", ["", 'version: "2.4"\n'])
def test_devshm_too_small_compose(tmp_path: Path, header: str) -> None:
    text, fs = check(tmp_path, header + textwrap.dedent("""
        services:
          filler:
            image: labctl/shmlab
            command: [posix-writer, --name, /big, --size, 96m, --fill]
        """))
    assert hits(fs, "devshm-too-small") == [where(text, "[posix-writer")]
    assert "64 MiB (the default" in fs[0].message


def test_devshm_raised_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          filler:
            image: labctl/shmlab
            command: posix-writer --name /big --size 96m --fill
            shm_size: 128m
        """)
    assert hits(fs, "devshm-too-small") == []


def test_devshm_too_small_pod_and_deployment(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: filler
            image: labctl/shmlab
            args: [posix-writer, --size, 96m]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          template:
            spec:
              containers:
              - name: trainer
                image: pytorch
                env: [{name: CACHE, value: /dev/shm/cache}]
        """, "k.yaml")
    assert hits(fs, "devshm-too-small") == [where(text, "[posix-writer"), where(text, "trainer")]


# ---------------------------------------------------------------- memory-emptydir-no-sizelimit

def test_memory_emptydir_without_sizelimit(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: s}
        spec:
          template:
            spec:
              containers:
              - name: a
                image: app
                volumeMounts: [{name: dshm, mountPath: /dev/shm}]
              volumes:
              - name: dshm
                emptyDir:
                  medium: Memory
        """, "s.yaml")
    assert hits(fs, "memory-emptydir-no-sizelimit") == [where(text, "medium: Memory")]


def test_memory_emptydir_with_sizelimit_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, POD_SHM.replace("48Mi", "512Mi"), "pod.yaml")
    assert fs == []


# ---------------------------------------------------------------- uid-mismatch

@pytest.mark.parametrize("header", ["", 'version: "2.4"\n'])
def test_uid_mismatch_compose(tmp_path: Path, header: str) -> None:
    text, fs = check(tmp_path, header + textwrap.dedent("""
        services:
          owner:
            image: app
            user: "1000:1000"
            ipc: shareable
          stranger:
            image: app
            user: "2000:2000"
            ipc: service:owner
        """))
    assert hits(fs, "uid-mismatch") == [where(text, '"2000:2000"')]


def test_uid_mismatch_with_common_group_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          owner: {image: app, user: "1000:1000", ipc: shareable}
          peer: {image: app, user: "2000:1000", ipc: "service:owner"}
          other: {image: app, user: "3000:3000", ipc: "service:owner", group_add: ["1000"]}
        """)
    assert hits(fs, "uid-mismatch") == []


def test_uid_mismatch_pod_and_deployment(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: owner
            image: app
            securityContext: {runAsUser: 1000, runAsGroup: 1000}
          - name: stranger
            image: app
            securityContext: {runAsUser: 2000, runAsGroup: 2000}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          template:
            spec:
              securityContext: {runAsUser: 1000, runAsGroup: 1000}
              containers:
              - name: a
                image: app
              - name: b
                image: app
                securityContext: {runAsUser: 3000, runAsGroup: 3000}
        """, "k.yaml")
    assert hits(fs, "uid-mismatch") == [where(text, "2000"), where(text, "3000")]


# ---------------------------------------------------------------- single-file-bind

def test_single_file_bind_compose(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stat.bin").write_bytes(b"\0" * 64)
    text, fs = check(tmp_path, """
        services:
          writer:
            image: app
            volumes: ["./data/stat.bin:/data/stat.bin"]
          reader:
            image: app
            volumes:
              - type: bind
                source: ./data/stat.bin
                target: /data/stat.bin
                read_only: true
        """)
    assert hits(fs, "single-file-bind") == [where(text, '"./data/stat.bin'), where(text, "/data/stat.bin", 3)]


def test_directory_bind_is_clean(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    _, fs = check(tmp_path, """
        services:
          writer: {image: app, volumes: ["./data:/data"]}
          reader: {image: app, volumes: ["./data:/data:ro"]}
        """)
    assert fs == []


def test_single_file_hostpath_and_subpath_pod(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: writer
            image: app
            volumeMounts: [{name: stat, mountPath: /data/stat.bin}]
          - name: reader
            image: app
            volumeMounts: [{name: stat, mountPath: /data/stat.bin, readOnly: true}]
          volumes:
          - name: stat
            hostPath: {path: /srv/stat.bin, type: File}
        """, "p.yaml")
    assert hits(fs, "single-file-bind") == [where(text, "/data/stat.bin"), where(text, "/data/stat.bin", 1)]


# ---------------------------------------------------------------- tmpfs-not-shared

def test_tmpfs_not_shared_compose_spec(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        services:
          writer:
            image: app
            command: [mmap-writer, --path, /scratch/conn_stat]
            tmpfs: [/scratch]
          reader:
            image: app
            command: [mmap-reader, --path, /scratch/conn_stat]
            tmpfs: /scratch
        """)
    assert hits(fs, "tmpfs-not-shared") == [where(text, "/scratch]"), where(text, "/scratch\n")]


def test_tmpfs_not_shared_compose_129_long_syntax(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        version: "3.8"
        services:
          writer:
            image: app
            environment: [STAT=/scratch/conn_stat]
            volumes:
              - type: tmpfs
                target: /scratch
          reader:
            image: app
            environment: {STAT: /scratch/conn_stat}
        """)
    assert hits(fs, "tmpfs-not-shared") == [where(text, "/scratch\n")]


def test_shared_tmpfs_volume_is_clean(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          writer: {image: app, command: [w, /scratch/x], volumes: ["scratch:/scratch"]}
          reader: {image: app, command: [r, /scratch/x], volumes: ["scratch:/scratch:ro"]}
          tmp1: {image: app, tmpfs: [/tmp]}
          tmp2: {image: app, tmpfs: [/tmp]}
        volumes:
          scratch:
            driver_opts: {type: tmpfs, device: tmpfs}
        """)
    assert fs == []


def test_tmpfs_not_shared_pod_and_deployment(tmp_path: Path) -> None:
    pod = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: writer
            image: app
            args: [--path, /scratch/x]
            volumeMounts: [{name: w, mountPath: /scratch}]
          - name: reader
            image: app
            args: [--path, /scratch/x]
            volumeMounts: [{name: r, mountPath: /scratch}]
          volumes:
          - {name: w, emptyDir: {sizeLimit: 1Mi}}
          - {name: r, emptyDir: {sizeLimit: 1Mi}}
        """
    text, fs = check(tmp_path, pod, "p.yaml")
    assert hits(fs, "tmpfs-not-shared") == [where(text, "/scratch}"), where(text, "/scratch}", 1)]
    shared = pod.replace("{name: r, mountPath", "{name: w, mountPath")
    _, fs = check(tmp_path, shared, "p.yaml")
    assert hits(fs, "tmpfs-not-shared") == []


# ---------------------------------------------------------------- unsafe-ipc-sysctl

def test_unsafe_ipc_sysctl_pod_and_deployment(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            sysctls:
            - {name: kernel.shm_rmid_forced, value: "1"}
            - {name: kernel.shmmax, value: "65536"}
          containers: [{name: a, image: app}]
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: c}
        spec:
          jobTemplate:
            spec:
              template:
                spec:
                  securityContext:
                    sysctls: [{name: fs.mqueue.msg_max, value: "100"}]
                  containers: [{name: a, image: app}]
        """, "k.yaml")
    assert hits(fs, "unsafe-ipc-sysctl") == [where(text, "kernel.shmmax"), where(text, "fs.mqueue.msg_max")]


def test_ipc_sysctls_in_compose_are_fine(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          a: {image: app, sysctls: {kernel.shmmax: "65536"}}
          b: {image: app, sysctls: ["kernel.msgmax=100"]}
        """)
    assert fs == []


# ---------------------------------------------------------------- shmmax-below-segment

@pytest.mark.parametrize("header", ["", 'version: "2.4"\n'])
def test_shmmax_below_segment_compose(tmp_path: Path, header: str) -> None:
    text, fs = check(tmp_path, header + textwrap.dedent("""
        services:
          ns:
            image: labctl/shmlab
            ipc: shareable
            sysctls: [kernel.shmmax=65536]
          writer:
            image: labctl/shmlab
            ipc: service:ns
            command: sysv-writer --size 1m
        """))
    assert hits(fs, "shmmax-below-segment") == [where(text, "sysv-writer")]


def test_shmmax_below_segment_pod_and_raised_is_clean(tmp_path: Path) -> None:
    pod = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            sysctls: [{name: kernel.shmmax, value: "65536"}]
          containers:
          - name: writer
            image: labctl/shmlab
            args: [sysv-writer, --size, 1m]
        """
    text, fs = check(tmp_path, pod, "p.yaml")
    assert hits(fs, "shmmax-below-segment") == [where(text, "[sysv-writer")]
    _, fs = check(tmp_path, pod.replace('"65536"', '"268435456"'), "p.yaml")
    assert hits(fs, "shmmax-below-segment") == []


# ---------------------------------------------------------------- sandboxed-runtime-ipc

@pytest.mark.parametrize("header", ["", 'version: "2.4"\n'])
def test_sandboxed_runtime_compose(tmp_path: Path, header: str) -> None:
    text, fs = check(tmp_path, header + textwrap.dedent("""
        services:
          writer: {image: app, ipc: shareable, runtime: runsc}
          reader: {image: app, ipc: "service:writer", runtime: runc}
          lone: {image: app, runtime: runsc}
        """))
    assert hits(fs, "sandboxed-runtime-ipc") == [where(text, "runsc}")]


def test_sandboxed_runtime_class_with_host_ipc(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          runtimeClassName: gvisor
          hostIPC: true
          containers: [{name: a, image: app}]
        """, "p.yaml")
    assert hits(fs, "sandboxed-runtime-ipc") == [where(text, "gvisor")]


# ---------------------------------------------------------------- restart-in-shared-namespace

def test_restart_in_shared_namespace(tmp_path: Path) -> None:
    text, fs = check(tmp_path, """
        services:
          holder: {image: app, ipc: shareable}
          app: {image: app, ipc: "service:holder", restart: "on-failure:3"}
        """)
    assert hits(fs, "restart-in-shared-namespace") == [where(text, '"on-failure:3"')]


# ---------------------------------------------------------------- suppression

def test_inline_and_own_line_ignore_comments(tmp_path: Path) -> None:
    _, fs = check(tmp_path, """
        services:
          a: {image: app, ipc: host}  # labctl: ignore=host-ipc
          b:
            image: app
            # labctl: ignore=host-ipc,uid-mismatch
            ipc: host
          c: {image: app, ipc: host}  # labctl: ignore=uid-mismatch
        """)
    assert [(f.rule, f.line) for f in fs] == [("host-ipc", 7)]


def test_every_rule_has_a_unit_test() -> None:
    source = Path(__file__).read_text()
    missing = [r for r in lint.table() if f'"{r}"' not in source]
    assert missing == []
