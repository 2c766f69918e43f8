"""labctl's own probe in each IPC namespace: one short-lived container per namespace.

The probe is the workload image's ``shmlab probe`` run as the container's command
(no exec, no shell): it reads /proc/sysvipc, /dev/shm and /dev/mqueue, prints one JSON
object and exits; ``run_to_exit`` removes it whatever happens. It changes nothing: no
network, read-only root, every capability dropped but IPC_OWNER and DAC_READ_SEARCH
(read any segment's table row and any /dev/shm entry), labelled by ``labels_for``.

How it enters a namespace:

* ``ipc: container:X`` where X is a member whose namespace may be joined: a donor made
  ``shareable``, a pod's infra container, or a joiner (``container:`` of its own);
  ``pid: container:Y`` (Y a running workload member, the donor first) so the creator
  and last pids of segments are numbers of that pid namespace and can be named;
* ``ipc: host`` for the host namespace;
* a private (or ``none``) namespace cannot be joined that way: only ``--allow-privileged``
  starts a *privileged* probe (host pid namespace, SYS_ADMIN and SYS_PTRACE added), which
  enters it with ``setns`` on /proc/PID/ns/ipc (``--ns-pid``) and reads /dev through
  /proc/PID/root.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from typing import Callable, Protocol

from labctl.errors import ContainerStartError, LabctlError
from labctl.inspect.findings import Member, Namespace
from labctl.runtime.labels import labels_for
from labctl.runtime.engine import RunSpec

PROBE_ARGS = ["probe", "--ns", "--segments", "--sems", "--queues", "--mqueues", "--devshm", "--statfs"]
PROBE_CAPS = ["IPC_OWNER", "DAC_READ_SEARCH"]  # read every row and file, change nothing
PRIVILEGED_CAPS = ["SYS_ADMIN", "SYS_PTRACE"]  # setns by pid (--allow-privileged only)
PROBE_TIMEOUT_S = 20.0  # one probe's whole life (create .. exit); it reads a few files
PROBE_WORKERS = 8  # probes started at once: the engine serialises part of each start
PRIVILEGED_FLAG = "--allow-privileged"
STALE_DEVSHM = ("not visible: a probe joining these joiners gets the restarted donor's new /dev/shm, not "
                "their old one (" + PRIVILEGED_FLAG + " reads it through /proc/PID/root)")
PRIVATE_REASON = ("a private IPC namespace (IPC mode {mode}): `ipc: container:` cannot join it; "
                  "joining by pid (setns on /proc/PID/ns/ipc, host pid, CAP_SYS_ADMIN: a privileged probe) "
                  "needs " + PRIVILEGED_FLAG)


class ProbeEngine(Protocol):
    """What probing needs from an engine (``labctl.runtime.Engine``)."""

    def run_to_exit(self, spec: RunSpec, timeout: float) -> tuple[int | None, str]: ...


def probe_event(text: str) -> dict | None:
    """The ``{"event": "probe"}`` object of a probe's output (None if absent); an
    ``{"event": "error"}`` object is returned too, for its message."""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("event") in ("probe", "error"):
                return data
    return None


def _joinable(m: Member) -> bool:
    return m.running and (m.ipc_mode == "shareable" or m.infra or m.donor_ref is not None)


def plan(ns: Namespace, privileged: bool) -> tuple[dict | None, str | None]:
    """How to enter ``ns``: (``{ipc_mode, pid_mode, via, privileged, ns_pid}``, None) or
    (None, the reason it is not inspected)."""
    running = [m for m in ns.members if m.running]
    if not running:
        return None, "no process runs in it any more: the namespace ended with its last process (and its objects)"
    workload = [m for m in running if not m.infra]
    pid_of = ([ns.donor] if ns.donor in workload else []) + workload or running
    if ns.kind == "host":
        return {"ipc_mode": "host", "pid_mode": f"container:{pid_of[0].id}", "via": "ipc: host",
                "pid_view": pid_of[0]}, None
    if ns.kind == "stale":
        # A probe joining a joiner gets its IPC namespace but the /dev/shm the engine keeps
        # for the donor, which it re-made at the restart: the joiners' old /dev/shm is
        # only reachable through their /proc/PID/root (privileged)
        joiner = running[0]
        if privileged:
            return {"pid_mode": "host", "ns_pid": joiner.pid, "via": f"setns pid {joiner.pid} of {joiner.name} "
                    "(privileged probe: host pid, SYS_ADMIN, SYS_PTRACE)"}, None
        return {"ipc_mode": f"container:{joiner.id}", "pid_mode": f"container:{pid_of[0].id}",
                "via": f"container:{joiner.name}", "pid_view": pid_of[0], "devshm_note": STALE_DEVSHM}, None
    target = next((m for m in ([ns.donor] if ns.donor else []) + running if m in running and _joinable(m)), None)
    if target is not None and target.pod:  # Podman lets only a pod's own containers join it
        return {"pod": target.pod, "pid_mode": f"container:{pid_of[0].id}", "via": f"pod {target.pod}",
                "pid_view": pid_of[0]}, None
    if target is not None:
        return {"ipc_mode": f"container:{target.id}", "pid_mode": f"container:{pid_of[0].id}",
                "via": f"container:{target.name}", "pid_view": pid_of[0]}, None
    mode = running[0].ipc_mode
    if not privileged:
        return None, PRIVATE_REASON.format(mode=mode)
    pid = running[0].pid
    return {"ipc_mode": None, "pid_mode": "host", "ns_pid": pid,
            "via": f"setns pid {pid} of {running[0].name} (privileged probe: host pid, SYS_ADMIN, SYS_PTRACE)"}, None


def spec_for(how: dict, image: str, run_id: str, index: int) -> RunSpec:
    """The probe container of one namespace (``how`` from ``plan``). The privileged form
    is not ``--privileged``: it adds only what setns into another container's IPC
    namespace takes (SYS_ADMIN for setns, SYS_PTRACE to open /proc/PID/ns/ipc and
    /proc/PID/root of a process it does not own) in the host's pid namespace."""
    role = f"probe-{index}"
    args = list(PROBE_ARGS)
    caps = list(PROBE_CAPS)
    if how.get("ns_pid"):
        args += ["--ns-pid", str(how["ns_pid"])]
        caps += PRIVILEGED_CAPS
    return RunSpec(name=f"labctl-inspect-{run_id[:8]}-{index}", image=image,
                   labels=labels_for(run_id, "inspect", role), command=args, ipc_mode=how.get("ipc_mode"),
                   network_mode="none", user="0:0", pid_mode=how.get("pid_mode"), cap_drop=["ALL"], cap_add=caps,
                   mem_limit="32m", pids_limit=8, pod=how.get("pod"))


def fill(ns: Namespace, data: dict) -> None:
    """Copy a probe's answer into ``ns``."""
    if data.get("event") == "error":
        ns.error = str(data.get("message") or "the probe failed")
        return
    ns.ident = str(data.get("ipcns") or ns.ident or "") or None
    ns.segments = list(data.get("segments") or [])
    ns.sems = list(data.get("sems") or [])
    ns.queues = list(data.get("queues") or [])
    ns.mqueues = list(data.get("mqueues") or [])
    if ns.devshm_note is None:
        ns.devshm_files = sorted(data.get("devshm") or [], key=lambda f: str(f.get("name")))
        ns.devshm_fs = data.get("devshm_fs")


def start_probes(engine: ProbeEngine, namespaces: list[Namespace], image: str, run_id: str, privileged: bool,
                 cancel: threading.Event, submit: Callable[..., Future]) -> list[tuple[Namespace, Future]]:
    """Start probing every namespace that can be entered, in parallel (``submit(fn,
    *args)``, a thread pool's); mark the others ``skipped`` (the reason, with the flag).
    ``cancel`` stops probes not yet started. ``collect`` the returned futures."""
    futures: list[tuple[Namespace, Future]] = []
    for i, ns in enumerate(namespaces):
        how, why = plan(ns, privileged)
        if how is None:
            ns.skipped = why
            continue
        ns.via = how["via"]
        ns.pid_view, ns.pid_host = how.get("pid_view"), how.get("pid_mode") == "host"
        ns.devshm_note = how.get("devshm_note")
        futures.append((ns, submit(_one, engine, spec_for(how, image, run_id, i), cancel)))
    return futures


def collect(futures: list[tuple[Namespace, Future]]) -> None:
    """Wait for the probes ``start_probes`` started; fill in what each saw, or ``error``
    (the engine refused the probe or it gave no answer: the engine's words)."""
    for ns, fut in futures:
        try:
            fill(ns, fut.result())
        except LabctlError as e:
            ns.error = str(e)


def _one(engine: ProbeEngine, spec: RunSpec, cancel: threading.Event) -> dict:
    if cancel.is_set():
        raise LabctlError("interrupted before the probe started")
    try:
        code, text = engine.run_to_exit(spec, PROBE_TIMEOUT_S)
    except ContainerStartError as e:
        raise LabctlError(f"the engine refused the probe: {e.reason}") from e
    data = probe_event(text)
    if data is None:
        state = "did not finish in time" if code is None else f"exit {code}"
        raise LabctlError(f"the probe gave no answer ({state}): {text.strip()[-300:]}")
    return data
