"""Running one server/client pair of ``shmlab bench``, natively on the host or in two
containers, and turning the client's ``result`` event into a Record.

Both placements run the same static binary with the same arguments; only what the
pair shares differs: on the host, a directory and the host's namespaces; in
containers, what the mechanism needs (an IPC namespace joined with
``ipc: container:``, a tmpfs or disk volume, a network namespace or a bridge).
Every container, volume and network is labelled through ``labels.labels_for``.
"""

from __future__ import annotations

import queue
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labctl.bench.records import Record, record_from_event
import sysv_ipc

from labctl.errors import ContainerStartError, Interrupted, LabctlError
from labctl.runtime.labels import ROLE, RUN_ID, labels_for
from labctl.runtime.engine import Container, Engine, RunSpec
from labctl.runtime.signals import interrupts_held
from labctl.runtime.jsonlines import json_events

SCENARIO = "bench"
MOUNT = "/bench"
SERVER_CPU, CLIENT_CPU = 0, 1
SERVER_GRACE_S = 10.0  # the server outlives the client's deadline by this much
START_TIMEOUT_S = 30.0  # a container start, or the server's "ready", within this


class PairError(LabctlError):
    """One pair failed (the run goes on and reports it)."""


@dataclass(frozen=True)
class PairSpec:
    """One measurement: a mechanism, a message size and how long to run it."""

    mechanism: str
    size: int
    iterations: int
    warmup: int
    timeout_s: float
    pin: bool
    batch: int = 0  # round trips per timed sample; 0: the client picks it from its warm-up

    def argv(self, role: str, **where: str | int) -> list[str]:
        """``shmlab bench`` arguments for ``role`` (server/client); ``where`` adds
        --dir/--key/--name/--host/--port; a ``batch`` above 0 is passed to the client."""
        timeout = self.timeout_s + (SERVER_GRACE_S if role == "server" else 0.0)
        argv = ["bench", "--role", role, "--mech", self.mechanism, "--size", str(self.size),
                "--iters", str(self.iterations), "--warmup", str(self.warmup),
                "--timeout", str(max(1, int(timeout * 1000)))]
        if self.pin:
            argv += ["--pin", str(SERVER_CPU if role == "server" else CLIENT_CPU)]
        if self.batch > 0 and role == "client":
            argv += ["--batch", str(self.batch)]
        for k, v in where.items():
            argv += [f"--{k}", str(v)]
        return argv


def result_from_events(events: list[dict], placement: str, what: str, tail: str) -> Record:
    """The Record of the client's ``result`` event; PairError with the client's own
    error (or its output tail) when there is none."""
    for ev in events:
        if ev.get("event") == "result":
            try:
                return record_from_event(ev, placement)
            except ValueError as e:
                raise PairError(f"{what}: {e}") from e
    errors = [ev for ev in events if ev.get("event") == "error"]
    if errors:
        raise PairError(f"{what}: {errors[-1].get('message', '?')} (exit {errors[-1].get('exit', '?')})")
    raise PairError(f"{what}: the client printed no result; its output ends with:\n{tail}")


def _sysv_key() -> int:
    # a random key per pair: no clash with a teammate's segments or a crashed run's
    return random.randint(0x4C000000, 0x4CFFFFFF)


# ==== host pairs ====


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def remove_host_segment(key: int) -> None:
    """``shmctl(IPC_RMID)`` the host segment of ``key`` if a killed server left it
    (none, or not ours to remove: nothing happens)."""
    try:
        segment = sysv_ipc.SharedMemory(key)  # opens (and attaches) the existing segment
    except (sysv_ipc.ExistentialError, sysv_ipc.PermissionsError):
        return
    try:
        segment.remove()  # IPC_RMID: gone once the last attachment (ours, below) is dropped
    except sysv_ipc.PermissionsError:
        pass
    finally:
        segment.detach()


class HostPairs:
    """Pairs of the static binary run as two host processes."""

    def __init__(self, binary: Path, run_id: str, gateway: str | None, scratch: Path) -> None:
        self.binary = binary
        self.run_id = run_id
        self.gateway = gateway
        scratch.mkdir(parents=True, exist_ok=True)
        self.disk_dir = Path(tempfile.mkdtemp(prefix=f"bench-{run_id[:8]}-", dir=scratch))
        shm = Path("/dev/shm")
        self.tmpfs_dir = Path(tempfile.mkdtemp(prefix=f"labctl-bench-{run_id[:8]}-", dir=shm if shm.is_dir() else None))
        self._procs: list[subprocess.Popen] = []

    def close(self) -> None:
        """Kill what still runs, remove the scratch directories."""
        for p in self._procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        self._procs.clear()
        shutil.rmtree(self.disk_dir, ignore_errors=True)
        shutil.rmtree(self.tmpfs_dir, ignore_errors=True)

    def _where(self, spec: PairSpec) -> tuple[dict[str, str | int], dict[str, str | int], int | None]:
        m = spec.mechanism
        if m in ("sysv-shm-spin", "sysv-shm-futex"):
            key = _sysv_key()
            return {"key": key}, {"key": key}, key
        if m == "posix-shm":
            name = f"/labctl-bench-{self.run_id[:8]}"
            return {"name": name}, {"name": name}, None
        if m == "mmap-tmpfs":
            return {"dir": str(self.tmpfs_dir)}, {"dir": str(self.tmpfs_dir)}, None
        if m in ("mmap-disk", "fifo", "unix-socket"):
            return {"dir": str(self.disk_dir)}, {"dir": str(self.disk_dir)}, None
        port = free_port()
        if m == "tcp-bridge":
            if not self.gateway:
                raise PairError("tcp-bridge on the host needs the bench bridge network's gateway address")
            # the host end of the bridge: a local address, so the kernel delivers it itself
            return {"port": port}, {"port": port, "host": self.gateway}, None
        return {"port": port}, {"port": port, "host": "127.0.0.1"}, None

    def run(self, spec: PairSpec) -> Record:
        """Run one host pair; raises PairError."""
        what = f"{spec.mechanism} {spec.size} B on the host"
        server_where, client_where, key = self._where(spec)
        lines: queue.Queue[str | None] = queue.Queue()
        server = subprocess.Popen([str(self.binary), *spec.argv("server", **server_where)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self._procs.append(server)

        def pump() -> None:
            assert server.stdout is not None
            for line in server.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        seen: list[str] = []
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not any('"event":"ready"' in s for s in seen):
                try:
                    line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    raise PairError(f"{what}: the server was not ready within {START_TIMEOUT_S:.0f}s") from None
                if line is None:
                    raise PairError(f"{what}: the server exited ({server.wait()}): {''.join(seen[-5:]).strip()}")
                seen.append(line)
            try:
                client = subprocess.run([str(self.binary), *spec.argv("client", **client_where)],
                                        capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                        timeout=spec.timeout_s + SERVER_GRACE_S)
            except subprocess.TimeoutExpired as e:
                raise PairError(f"{what}: the client ignored its own deadline") from e
            events = json_events(client.stdout)
            record = result_from_events(events, "host", what, (client.stdout + client.stderr)[-800:])
            try:
                server.wait(timeout=SERVER_GRACE_S)
            except subprocess.TimeoutExpired:
                server.kill()
            return record
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=5)
            if key is not None:
                remove_host_segment(key)


# ==== container pairs ====


class ContainerPairs:
    """Pairs run as two containers, hardened like the runner's (read-only root, no
    capabilities, no-new-privileges, pids and memory limits; no network unless the
    mechanism is TCP). They run as uid 0 *without capabilities* so they can write the
    root-owned fresh volumes without a prep step."""

    def __init__(self, engine: Engine, image: str, run_id: str, *, placement: str = "container",
                 platform: str | None = None) -> None:
        """``placement``: the name results carry; ``platform``: the image's platform when it
        is not the engine's own (``container-386`` pairs run ``linux/386`` containers)."""
        self.engine = engine
        self.image = image
        self.run_id = run_id
        self.placement = placement
        self.platform = platform
        self.prefix = f"labctl-{run_id[:8]}-bench" + ("" if placement == "container" else f"-{placement}")
        self._objects: dict[str, str] = {}

    # the shared objects, created on first use and removed by close()
    def _volume(self, kind: str) -> str:
        if kind not in self._objects:
            name = f"{self.prefix}-{kind}"
            opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"} if kind == "tmpfs" else None
            self.engine.create_volume(name, labels_for(self.run_id, SCENARIO, kind), opts)
            self._objects[kind] = name
        return self._objects[kind]

    def network(self) -> str:
        """The bench's bridge network (created on first use)."""
        if "net" not in self._objects:
            name = f"{self.prefix}-net"
            self.engine.create_network(name, labels_for(self.run_id, SCENARIO, "net"))
            self._objects["net"] = name
        return self._objects["net"]

    def gateway(self) -> str | None:
        """The bridge's host-side address (for the host tcp-bridge pair)."""
        return self.engine.network_gateway(self.network())

    def close(self) -> tuple[list[str], list[str]]:
        """Remove every object of this bench run (containers, volumes, network)."""
        self._objects.clear()
        return self.engine.remove_labelled({RUN_ID: self.run_id})

    def _spec(self, role: str, spec: PairSpec, argv: list[str], **kw: object) -> RunSpec:
        name = f"{self.prefix}-{spec.mechanism}-{spec.size}-{role}"
        return RunSpec(name=name, image=self.image, labels=labels_for(self.run_id, SCENARIO, role),
                       command=argv, user="0:0", platform=self.platform, **kw)  # type: ignore[arg-type]

    def run(self, spec: PairSpec) -> Record:
        """Run one container pair; raises PairError (EngineError when the engine fails)."""
        what = f"{spec.mechanism} {spec.size} B in containers"
        m = spec.mechanism
        s_kw: dict[str, object] = {}
        c_kw: dict[str, object] = {}
        s_where: dict[str, str | int] = {}
        c_where: dict[str, str | int] = {}
        server_name = f"{self.prefix}-{m}-{spec.size}-server"
        if m in ("sysv-shm-spin", "sysv-shm-futex", "posix-shm"):
            s_kw["ipc_mode"] = "shareable"
            c_kw["ipc_mode"] = f"container:{server_name}"
            if m == "posix-shm":
                s_where = c_where = {"name": f"/labctl-bench-{self.run_id[:8]}"}
            else:
                s_where = c_where = {"key": _sysv_key()}
        elif m in ("mmap-tmpfs", "mmap-disk", "fifo", "unix-socket"):
            vol = self._volume("tmpfs" if m == "mmap-tmpfs" else "disk")
            s_kw["mounts"] = c_kw["mounts"] = [("volume", vol, MOUNT, False)]
            s_where = c_where = {"dir": MOUNT}
        elif m == "tcp-shared-netns":
            # the server's namespace has only loopback; the client joins it
            c_kw["network_mode"] = f"container:{server_name}"
            s_where, c_where = {"port": 47000}, {"port": 47000, "host": "127.0.0.1"}
        else:
            net = self.network()
            s_kw["network_mode"] = c_kw["network_mode"] = net
            s_where, c_where = {"port": 47000}, {"port": 47000}
        started: list[Container] = []
        clean = False
        try:
            server = self._start(self._spec("server", spec, spec.argv("server", **s_where), **s_kw), what)
            started.append(server)
            if not server.output.wait_for(lambda: any(e.get("event") in ("ready", "error") for e in server.output.events),
                                          time.monotonic() + START_TIMEOUT_S):
                raise PairError(f"{what}: the server was not ready within {START_TIMEOUT_S:.0f}s:\n{server.output.tail(5)}")
            if not any(e.get("event") == "ready" for e in server.output.events):
                raise PairError(f"{what}: the server failed:\n{server.output.tail(5)}")
            if m == "tcp-bridge":
                ip = server.ip_address(self.network())
                if not ip:
                    raise PairError(f"{what}: the server has no address on {self.network()}")
                c_where["host"] = ip
            client = self._start(self._spec("client", spec, spec.argv("client", **c_where), **c_kw), what)
            started.append(client)
            status = client.wait_exit(spec.timeout_s + SERVER_GRACE_S)
            if status is None:
                raise PairError(f"{what}: the client did not exit in time:\n{client.output.tail(5)}")
            # the output stream closes after the exit: let the pump deliver the last line
            client.output.wait_for(lambda: client.output.closed, time.monotonic() + 5.0)
            record = result_from_events(list(client.output.events), self.placement, what, client.output.tail(8))
            clean = server.wait_exit(SERVER_GRACE_S) is not None
            return record
        finally:
            if clean:  # both exited: remove the two we hold, the client first (it joined the server)
                for c in reversed(started):
                    c.remove()
            else:  # a failed pair may have left a container we hold no handle to: sweep by label
                for role in ("client", "server"):
                    self.engine.remove_labelled({RUN_ID: self.run_id, ROLE: role})

    def _start(self, run_spec: RunSpec, what: str) -> Container:
        """Create, attach and start one container, with SIGINT/SIGTERM held meanwhile: an
        interrupt that cut the engine's create short would leave a container the engine
        makes after the sweep that follows (seen: one "created" server after Ctrl-C under
        load). The interrupt is raised once the call returns, and the sweep finds it."""
        with interrupts_held(signal.SIGINT, signal.SIGTERM) as held:
            try:
                return self.engine.start_container(run_spec, run_spec.labels[ROLE])
            except ContainerStartError as e:
                raise PairError(f"{what}: {e}") from e
            finally:
                if held:
                    raise Interrupted(held[0])
