"""``Container`` on the Docker SDK.

Every foreign error (``docker.errors.*``, ``requests.exceptions.*``) raised by a
container operation is turned into ``labctl.errors`` here, once (the engine's words:
``docker_calls.explain``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import docker
import docker.errors
import docker.types

from labctl.errors import ContainerStartError, EngineError
from labctl.runtime.attach import pump, raw_socket
from labctl.runtime.docker_calls import TRANSIENT, bounded, explain, inspect, past_exit_races
from labctl.runtime.docker_oom import oom_event_logged
from labctl.runtime.logs import ExitStatus, Output
from labctl.runtime.engine import Container, ContainerGone, RunSpec

if TYPE_CHECKING:
    import docker.models.containers

class DockerContainer(Container):
    """A running (or exited) Docker container labctl created, with its output being collected."""

    def __init__(self, api: "docker.APIClient", obj: "docker.models.containers.Container", role: str,
                 output: Output | None = None, *, restarts: bool = False, follow_log: bool = True) -> None:
        """Wrap a *created* container and attach to its output (``output``, with its
        watchers, or a fresh one); ``start()`` it afterwards.
        Attaching before the start (as ``docker run`` does) is what guarantees the first
        lines are not lost: the engine connects the container's output pipes before it
        answers the attach. Every attach asks for the live stream only, never the engine's
        log replay (``logs=0``): on Docker the replay is read *after* the pipes are connected,
        so a line written in between would arrive twice (seen: 2 % of short runs under load).
        EngineError if the attach fails; ContainerStartError when the engine
        refuses to set the container up then (Podman runs the OCI runtime's create at the first attach).
        ``follow_log`` False: the engine's followed log is not trusted across restarts, later
        runs are read by repeated replays instead (see ``_follow_restarts``)."""
        self._obj = obj
        self.role = role
        self.name = str(obj.name)
        self.id = str(obj.id)
        self.output = output if output is not None else Output()
        self._exit: ExitStatus | None = None
        self._exit_lock = threading.Lock()
        self._api = api
        self._started = False
        # With a restart policy the engine starts the container again on its own: the pump
        # then follows its next runs from the engine's log (see _follow_restarts).
        self._restarts = restarts
        self._follow_log = follow_log
        self._sigkilled = False  # labctl itself sent a SIGKILL (kill step, stop): an exit 137 is ours
        self._reader = self._attach()

    def _attach(self) -> threading.Thread:
        try:
            # The POST /attach happens here, synchronously; the pump reads the hijacked socket
            # in bulk (labctl.runtime.attach), not frame by frame through the SDK's iterator.
            sock = self._api.attach_socket(self.id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0})
            raw = raw_socket(sock)
        except docker.errors.APIError as e:
            if not self._started and "OCI" in explain(e):
                # Podman sets the container up (runs the OCI runtime's create) when it is first
                # attached: the runtime's refusal (a namespace it may not join) lands here
                raise ContainerStartError(self.role, explain(e)) from e
            raise EngineError(f"attaching to container {self.role!r}: {explain(e)}") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"attaching to container {self.role!r}: {explain(e)}") from e
        except TRANSIENT as e:
            raise EngineError(f"attaching to container {self.role!r}: the engine stopped answering") from e
        reader = threading.Thread(target=self._pump, args=(sock, raw), name=f"logs-{self.name}", daemon=True)
        reader.start()
        return reader

    def start(self) -> None:
        if self._started:
            if self.poll_exit() is None:
                return  # still running (or paused): `docker start` would do nothing either
            # Again, after an exit or a stop: the old stream has ended. Let its last lines
            # in, then attach anew (the old lines are in output already).
            self._reader.join(timeout=2.0)
            with self._exit_lock:
                self._exit = None
                self._sigkilled = False
            self.output.reopen()
            self._reader = self._attach()
        try:
            self._obj.start()
        except docker.errors.APIError as e:
            raise ContainerStartError(self.role, explain(e)) from e
        except TRANSIENT as e:
            raise EngineError(f"starting container {self.role!r}: the engine stopped answering") from e
        self._started = True

    def _pump(self, sock: object, raw: socket.socket) -> None:
        # ``sock`` (the SDK's wrapper) is held so the connection lives as long as the read.
        try:
            pump(raw, self.output.feed)
        except Exception:  # noqa: BLE001 - the stream dies with the container; state tells why
            pass
        finally:
            try:
                raw.close()
            except OSError:
                pass
        try:
            if self._restarts:
                self._follow_restarts()
        except Exception:  # noqa: BLE001 - removed or unreachable: nothing more will come
            pass
        finally:
            self.output.close()

    def _follow_restarts(self) -> None:
        """Follow the runs the engine starts by the restart policy until the container stays
        exited (or is removed). Their lines come from the engine's log (an attach cannot
        be made before a start labctl does not do): replayed whole, the lines already
        collected skipped, stdout live, stderr once each run ends. Runs are numbered by
        the workload's ``start`` events (Output).

        Live means a followed log (``logs --follow``) where the engine keeps its lines in
        order. Podman 4's does not across a restart: under load its followed stream skipped
        a run's first line or gave a later line early (seen in 3 of 180 four-run crash loops
        on a loaded machine; the log replayed afterwards was whole and in order), and lines
        once fed cannot be taken back. With ``follow_log`` False a running container's log
        is replayed whole, without follow, at a bounded backoff (20 ms doubling to 250 ms).

        What is skipped is counted in whole lines on both sides: an unterminated piece the
        attach stream ended on is dropped (the log holds that line whole), and a replay that
        ends inside a line, before the final exit, leaves the piece for the next replay
        instead of counting it as a line."""
        self.output.drop_partial()
        pause = 0.02
        while True:
            state = dict(inspect(self._api, self.id).get("State") or {})
            status = state.get("Status")
            if status == "running":
                before = dict(self.output.line_counts)
                self._relay("stdout", follow=self._follow_log, final=False)
                self._relay("stderr", follow=False, final=False)
                if self._follow_log:
                    pause = 0.02
                    continue  # the follow itself waited for the run to end
                if self.output.line_counts != before:
                    pause = 0.02  # replayed and lines came: look again soon
            elif status in ("exited", "dead", "created") and not state.get("Restarting"):
                self._relay("stdout", follow=False, final=True)  # a run too short to be seen running
                self._relay("stderr", follow=False, final=True)
                return
            # restarting (the policy's back-off), paused, removing, or replayed without follow:
            # look again shortly
            time.sleep(pause)  # engine state has no event to wait on here: bounded backoff
            pause = min(pause * 2, 0.25)

    def _relay(self, stream: str, follow: bool, final: bool) -> None:
        """Feed the complete lines of ``stream`` in the engine's log beyond those already
        collected; with ``final`` (the container stays exited) also a last unterminated one."""
        seen = self.output.line_counts[stream]
        chunks = self._api.logs(self.id, stdout=stream == "stdout", stderr=stream == "stderr",
                                stream=True, follow=follow)
        buf = b""
        for chunk in chunks:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            fresh = []
            for line in lines:
                if seen > 0:
                    seen -= 1
                else:
                    fresh.append(line)
            if fresh:
                self.output.feed(stream, b"\n".join(fresh) + b"\n")
        if buf and seen <= 0 and final:
            self.output.feed(stream, buf + b"\n")

    def _gone(self, what: str = "was removed behind labctl's back") -> ContainerGone:
        return ContainerGone(f"container {self.role!r} ({self.name}) {what}")

    def wait_exit(self, timeout: float) -> ExitStatus | None:
        if self._exit is not None:
            return self._exit
        if self._restarts:
            return self._wait_final_exit(timeout)
        if timeout <= 0:
            return self.poll_exit()
        try:
            res = self._obj.wait(timeout=timeout)
        except TRANSIENT:
            return self.poll_exit()
        except docker.errors.NotFound as e:
            raise self._gone() from e
        except docker.errors.DockerException as e:
            raise EngineError(f"waiting for container {self.role!r}: {explain(e)}") from e
        error = res.get("Error")
        return self._record_exit(res.get("StatusCode", -1), error.get("Message", "") if isinstance(error, dict) else "")

    def _record_exit(self, code: int, error: str = "") -> ExitStatus:
        with self._exit_lock:
            if self._exit is None:
                oom = False
                try:
                    past_exit_races(self._obj.reload)
                    state = self._obj.attrs["State"]
                    oom = bool(state.get("OOMKilled"))
                    removing = state.get("Status") == "removing"
                    if code == 137 and not oom and not removing and not self._sigkilled and self._memory_limited():
                        oom = oom_event_logged(self._api, self.id, str(state.get("StartedAt") or ""))
                except docker.errors.NotFound:
                    removing = True
                except docker.errors.DockerException:
                    removing = False
                if removing:
                    # `docker rm -f` kills first, so the wait saw an exit (137); say what
                    # really happened instead of "killed by SIGKILL".
                    raise self._gone(f"was removed behind labctl's back (docker rm; it ended with exit {code})")
                self._exit = ExitStatus(code=code, oom_killed=oom, error=error)
                # The log stream closes right after exit; give the pump a bounded moment
                # so checks see the final lines.
                self._reader.join(timeout=2.0)
            return self._exit

    def _memory_limited(self) -> bool:
        """Whether the container has a memory cgroup limit (HostConfig.Memory > 0): only then
        can its memory cgroup's OOM killer end it."""
        return int((self._obj.attrs.get("HostConfig") or {}).get("Memory") or 0) > 0

    def _wait_final_exit(self, timeout: float) -> ExitStatus | None:
        """With a restart policy an exit is final only once the engine gave up restarting
        (``docker wait`` returns at every exit): poll the state, bounded backoff."""
        end = time.monotonic() + timeout
        pause = 0.02
        while True:
            status = self.poll_exit()
            if status is not None or time.monotonic() >= end:
                return status
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def poll_exit(self) -> ExitStatus | None:
        if self._exit is not None:
            return self._exit
        state = self.state()
        if state.get("Status") in ("exited", "dead") and not state.get("Restarting"):
            return self._record_exit(int(state.get("ExitCode", -1)), state.get("Error", ""))
        return None

    def _inspect(self) -> dict:
        try:
            past_exit_races(self._obj.reload)
        except docker.errors.NotFound as e:
            raise self._gone() from e
        except docker.errors.DockerException as e:
            raise EngineError(f"inspecting container {self.role!r}: {explain(e)}") from e
        return dict(self._obj.attrs)

    def state(self) -> dict:
        return dict(self._inspect().get("State", {}))

    def exec(self, cmd: list[str], timeout: float = 30.0) -> tuple[int, str]:
        what = f"docker exec {' '.join(cmd)} in container {self.role!r}"
        try:
            # exec_run reads the output with no socket timeout: bound it from here
            res = bounded(what, timeout, lambda: self._obj.exec_run(cmd, stdout=True, stderr=True))
        except docker.errors.NotFound as e:
            raise self._gone("is gone") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"{what}: {explain(e)}") from e
        except TRANSIENT as e:
            raise EngineError(f"{what}: the engine stopped answering: {e}") from e
        code = int(res.exit_code if res.exit_code is not None else -1)
        return code, (res.output or b"").decode("utf-8", errors="replace")

    def kill(self, signal: str = "SIGKILL") -> None:
        if signal in ("SIGKILL", "KILL", "9"):
            self._sigkilled = True
        try:
            self._obj.kill(signal=signal)
        except docker.errors.DockerException:
            pass

    def _do(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound as e:
            raise self._gone() from e
        except (docker.errors.DockerException, *TRANSIENT) as e:
            raise EngineError(f"{what} container {self.role!r}: {explain(e)}") from e

    def stop(self, timeout: float = 10.0) -> ExitStatus | None:
        self._sigkilled = True  # a stop that outlasts its grace ends in the engine's SIGKILL
        self._do("stopping", self._obj.stop, timeout=max(0, int(round(timeout))))
        return self.wait_exit(max(1.0, timeout))

    def pause(self) -> None:
        self._do("pausing", self._obj.pause)

    def unpause(self) -> None:
        self._do("unpausing", self._obj.unpause)

    def remove(self) -> None:
        try:
            self._obj.remove(force=True, v=True)
        except (docker.errors.DockerException, *TRANSIENT):
            pass

    def logs(self) -> tuple[str, str]:
        out, err = (self._do("reading the logs of", self._obj.logs, stdout=o, stderr=not o) for o in (True, False))
        return out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")

    def restart_count(self) -> int:
        return int(self._inspect().get("RestartCount") or 0)

    def memory_usage(self) -> int | None:
        if self.state().get("Status") != "running":
            return None
        stats = self._do("reading the stats of", self._api.stats, self.id, stream=False, one_shot=True)
        usage = ((stats or {}).get("memory_stats") or {}).get("usage")
        return int(usage) if usage is not None else None

    def ip_address(self, network: str) -> str | None:
        nets = (self._inspect().get("NetworkSettings") or {}).get("Networks") or {}
        addr = (nets.get(network) or {}).get("IPAddress")
        return str(addr) if addr else None


def restart_policy(policy: str) -> dict | None:
    """``on-failure:3`` -> the SDK's ``{"Name": "on-failure", "MaximumRetryCount": 3}``;
    None for ``no`` (the engine's default)."""
    if policy == "no":
        return None
    name, _, count = policy.partition(":")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def create_kwargs(spec: RunSpec, security_opt: list[str]) -> dict[str, Any]:
    """The SDK's ``containers.create`` arguments for ``spec`` (``security_opt`` as the engine
    takes it); keys whose value is None are the engine's defaults."""
    mounts = [
        docker.types.Mount(target=t, source=s, type=kind, read_only=ro)
        for kind, s, t, ro in spec.mounts
    ]
    kwargs = dict(
        image=spec.image, name=spec.name, labels=spec.labels, command=spec.command,
        entrypoint=spec.entrypoint, ipc_mode=spec.ipc_mode, network_mode=spec.network_mode,
        user=spec.user or None, read_only=spec.read_only, cap_drop=spec.cap_drop or None,
        cap_add=spec.cap_add or None, security_opt=security_opt or None,
        pids_limit=spec.pids_limit, mem_limit=spec.mem_limit, shm_size=spec.shm_size,
        sysctls=spec.sysctls or None, environment=spec.environment or None, mounts=mounts or None,
        tmpfs=spec.tmpfs or None, privileged=spec.privileged, pid_mode=spec.pid_mode,
        devices=spec.devices or None, volumes_from=spec.volumes_from or None, detach=True,
        platform=spec.platform,  # create?platform=: the engine refuses an image of another platform
        init=spec.init or None,
        memswap_limit=spec.memswap_limit, restart_policy=restart_policy(spec.restart_policy),
        runtime=spec.runtime,  # create's HostConfig.Runtime: a runtime registered in daemon.json
        userns_mode=spec.userns_mode,  # HostConfig.UsernsMode (Podman: also keep-id, auto)
    )
    return kwargs


def sdk_create(client: Any, kwargs: dict[str, Any]) -> Any:
    """``containers.create(**kwargs)``; a ``userns_mode`` the SDK does not know (Podman's
    keep-id, auto: the SDK accepts only host) is set in HostConfig.UsernsMode directly."""
    userns = kwargs.get("userns_mode")
    if userns in (None, "host"):
        return client.containers.create(**kwargs)
    from docker.models.containers import _create_container_args  # the SDK's own mapping

    kwargs = {**kwargs, "userns_mode": None, "version": client.api._version}
    args = _create_container_args({k: v for k, v in kwargs.items() if v is not None} | {"command": kwargs.get("command")})
    args["host_config"]["UsernsMode"] = userns
    return client.containers.get(client.api.create_container(**args)["Id"])
