"""A Docker engine socket proxy for fault tests: it forwards every byte between a client
(``DOCKER_HOST=unix://PATH``) and the real engine socket, except that a request whose
first bytes match ``hold`` is never forwarded and never answered: the engine call hangs,
as it does with a wedged daemon, while every other call goes through."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class EngineProxy:
    """Listen on a unix socket in a temp dir; ``held`` counts the requests held."""

    def __init__(self, hold: re.Pattern[bytes], engine: str = "/var/run/docker.sock") -> None:
        self.hold = hold
        self.engine = engine
        self.dir = tempfile.mkdtemp(prefix="labctl-proxy-")
        self.path = os.path.join(self.dir, "engine.sock")
        self.held = 0
        self.stopping = False
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._socks: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.engine)
            self._socks += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and self.hold.search(data):
                    self.held += 1
                    return  # swallowed: this connection's call never reaches the engine
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not from_client:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopping = True
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass


@contextmanager
def engine_proxy(hold: str) -> Iterator[EngineProxy]:
    """An EngineProxy holding requests that match the regex ``hold``, closed afterwards."""
    proxy = EngineProxy(re.compile(hold.encode()))
    try:
        yield proxy
    finally:
        proxy.close()
