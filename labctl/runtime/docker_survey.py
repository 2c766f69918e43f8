"""Looking at containers labctl did not create, on the Docker SDK (``labctl inspect``).

Part of the engine boundary (imports ``docker``): one container listing, inspects in
parallel, memory figures from the stats endpoint, and a one-shot container run (create,
start, wait, logs, remove) for labctl's own probes. Errors leave as ``labctl.errors``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import docker
import docker.errors

from labctl.errors import ContainerStartError, EngineError
from labctl.runtime.labels import ROLE
from labctl.runtime.docker_calls import TRANSIENT, explain, inspect

if TYPE_CHECKING:
    from labctl.runtime.docker_engine import DockerEngine
    from labctl.runtime.engine import RunSpec

INSPECT_WORKERS = 8  # concurrent inspects: the engine answers them in parallel


def survey(engine: "DockerEngine", filters: dict[str, list[str]], *, all: bool = False) -> list[dict]:
    """``docker ps [--all] --filter ...`` then ``docker inspect`` of each, in parallel:
    the full inspect documents (Id, Name, Config.Labels, HostConfig.IpcMode, State...).
    A container removed between the two calls is left out. EngineError."""
    try:
        rows = engine.api.containers(all=all, filters=filters or None)
    except (docker.errors.DockerException, *TRANSIENT) as e:
        raise EngineError(f"listing containers: {explain(e)}") from e
    ids = [str(r["Id"]) for r in rows]
    with ThreadPoolExecutor(max_workers=max(1, min(INSPECT_WORKERS, len(ids)))) as pool:
        docs = list(pool.map(lambda ref: inspect_container(engine, ref), ids))
    return [d for d in docs if d is not None]


def inspect_container(engine: "DockerEngine", ref: str) -> dict | None:
    """``docker inspect REF`` (id, id prefix or name); None when there is no such
    container. EngineError for other failures."""
    try:
        return inspect(engine.api, ref)
    except docker.errors.NotFound:
        return None
    except (docker.errors.DockerException, *TRANSIENT) as e:
        raise EngineError(f"inspecting container {ref[:12]}: {explain(e)}") from e


def memory_stats(engine: "DockerEngine", ref: str) -> dict | None:
    """``docker stats --no-stream`` of one container, one sample (``one-shot``): its
    ``memory_stats`` (``usage``, ``limit``, ``stats`` of memory.stat as the engine
    passes it on). None when it is gone or does not run. EngineError."""
    try:
        stats = engine.api.stats(ref, stream=False, one_shot=True)
    except docker.errors.NotFound:
        return None
    except (docker.errors.DockerException, *TRANSIENT) as e:
        raise EngineError(f"reading the stats of container {ref[:12]}: {explain(e)}") from e
    return dict((stats or {}).get("memory_stats") or {}) or None


def run_to_exit(engine: "DockerEngine", spec: "RunSpec", timeout: float) -> tuple[int | None, str]:
    """``docker run --rm`` of ``spec`` without attaching: create, start, wait at most
    ``timeout`` seconds, ``docker logs`` (stdout and stderr in one text), remove whatever happened.
    Returns (exit code or None if it did not exit in time, output). The engine refusing
    the container raises ContainerStartError with its words; EngineError otherwise."""
    container = None
    try:
        container = engine.create_container(spec, spec.labels.get(ROLE, spec.name))
        cid = container.id
        try:
            engine.api.start(cid)
        except docker.errors.APIError as e:
            raise ContainerStartError(spec.name, explain(e)) from e
        deadline = time.monotonic() + timeout
        code: int | None = None
        while code is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                code = int(engine.api.wait(cid, timeout=max(1, int(left) + 1)).get("StatusCode", -1))
            except TRANSIENT:
                continue  # the wait's read timed out: the deadline decides
        return code, engine.api.logs(cid, stdout=True, stderr=True).decode(errors="replace")
    except (docker.errors.DockerException, *TRANSIENT) as e:
        raise EngineError(f"probe {spec.name}: {explain(e)}") from e
    finally:
        if container is not None:
            try:
                engine.api.remove_container(container.id, force=True, v=True)
            except (docker.errors.DockerException, *TRANSIENT):
                pass  # removed by label at the end of the inspect
