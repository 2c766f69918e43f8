"""Reading a container's attach stream in bulk: the engine's multiplexed frames split into
stdout and stderr bytes with one pass per socket read, not per frame.

The engine's attach stream (``POST /containers/{id}/attach`` without a TTY, Docker and
Podman alike) is a sequence of frames: an 8-byte header (stream id: 1 stdout, 2 stderr;
three zero bytes; the payload length as a big-endian unsigned 32-bit integer) and the
payload. The engine writes one frame per read from the container's pipe, so a chatty
workload produces frames of one or a few lines each.

The Docker SDK's own iterator (``attach(stream=True, demux=True)``) reads each frame with
two ``poll`` + ``recv`` pairs (header, then payload) and yields it to Python on its own; a
consumer fed frame by frame then takes its lock and wakes its waiters once per line. On a
2-core machine shared with the engine and the workload that per-frame work is what keeps
a chatty run from the engine's pace. ``StreamDemux`` and ``pump`` read whatever the socket
holds (up to ``READ_SIZE`` bytes) and hand each stream's bytes of that read over at once.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from struct import Struct
from typing import Callable

READ_SIZE = 1 << 18  # bytes per socket read: large, so a backlog is taken in one call
# After a read that emptied the socket, the pump waits this long before reading again. A
# reader that keeps up with a chatty workload otherwise reads one or two lines at a time
# (a 3M-event flood: ~100,000 reads of median 136 bytes), and each read costs labctl a
# feed (lock, decode, parse, watchers), a blocking recv and a thread wake-up; paced, the
# same flood takes ~10,000 reads of ~4 KiB and labctl's CPU per event falls by 15-40 %.
# A line waits at most this long; a full read (a backlog) is followed by the next at once.
PACE = 0.001
# On a Unix socket (the engine's API socket, Docker's and Podman's) the kernel does that
# gathering instead: a read returns once GATHER bytes are in (SO_RCVLOWAT) or PACE has
# passed (SO_RCVTIMEO, in the kernel's ticks: a line waits a few ms at most) with what came.
# While the pump waits in that read, each frame the engine writes is copied out as it
# arrives, so the engine's side of the socket never fills: a sleeping pump let it fill (a
# Unix socket holds ~200 one-line frames, about a millisecond of a flood), and the engine
# then stopped reading the container's pipe, its log included, until the pump woke. On the
# 3M-event flood: median labctl/floor 1.18-1.20 sleeping, 1.15-1.16 gathered, and the worst
# of five or six pairs 1.35-1.40 against 1.20-1.26.
GATHER = 1 << 16
_HEADER = Struct(">BxxxL")  # stream id, 3 pad bytes, payload length
STDERR = 2


class StreamDemux:
    """Splits a multiplexed attach stream, fed in arbitrary pieces, into stdout and stderr
    bytes. A header or payload cut between two pieces is carried over."""

    def __init__(self) -> None:
        self._head = b""  # an incomplete header from the previous piece
        self._stream = 1  # stream id of the frame being read
        self._left = 0  # payload bytes of that frame still to come

    def split(self, data: bytes | memoryview) -> tuple[bytes, bytes]:
        """``(stdout, stderr)``: the payload bytes of each stream found in ``data``, in order
        (copies: ``data`` may be a view of a buffer that is reused)."""
        if self._head:
            data, self._head = self._head + data, b""
        out: list[bytes | memoryview] = []
        err: list[bytes | memoryview] = []
        end = len(data)
        pos = min(self._left, end)  # the rest of a frame begun in an earlier piece
        if pos:
            (err if self._stream == STDERR else out).append(data[:pos])
            self._left -= pos
        unpack = _HEADER.unpack_from
        # one pass per frame: its header, then its payload (cut short at the piece's end)
        while end - pos >= 8:
            stream, size = unpack(data, pos)
            pos += 8
            stop = pos + size
            (err if stream == STDERR else out).append(data[pos:stop])
            if stop > end:
                self._stream, self._left = stream, stop - end
                pos = end
                break
            pos = stop
        if pos < end:
            self._head = bytes(data[pos:])
        return b"".join(out), b"".join(err)


def raw_socket(sock: object) -> socket.socket:
    """The OS socket under what ``APIClient.attach_socket`` returns (a ``SocketIO`` over a
    Unix socket, or the socket itself for TCP/TLS), in blocking mode without a timeout: a
    workload may stay silent for longer than the client's request timeout."""
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(None)  # type: ignore[attr-defined]
    return raw  # type: ignore[return-value]


def gathered(raw: socket.socket) -> bool:
    """Ask the kernel to hold each read of ``raw`` until GATHER bytes or PACE (see GATHER);
    False, having changed nothing, for a socket it cannot do that for (TCP, TLS)."""
    if type(raw) is not socket.socket or raw.family != socket.AF_UNIX:
        return False
    timeval = struct.Struct("ll")  # struct timeval: seconds, microseconds
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval.pack(0, int(PACE * 1e6)))
    except OSError:
        return False
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, GATHER)
    except OSError:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval.pack(0, 0))  # back to none
        return False
    return True


def pump(raw: socket.socket, feed: Callable[[str, bytes], None]) -> None:
    """Read ``raw`` to its end (the container's output closed, or the socket did), calling
    ``feed("stdout" | "stderr", bytes)`` once per stream per read, at most one read per
    ``PACE`` while the stream flows unless GATHER bytes came sooner. OSError when the socket
    fails (the container was removed under it)."""
    demux = StreamDemux()
    # One buffer, reused: a fresh 256 KiB bytes object per read would cost an mmap and
    # munmap (glibc serves allocations that large from mmap) on every call.
    buf = bytearray(READ_SIZE)
    view = memoryview(buf)
    recv_into = raw.recv_into
    kernel_paced = gathered(raw)
    if kernel_paced:
        idle = select.poll()  # where a held read that timed out empty waits for the next byte
        idle.register(raw, select.POLLIN)
    while True:
        try:
            n = recv_into(buf)
        except BlockingIOError:  # gathered, and nothing came within PACE: wait for a byte
            idle.poll()
            continue
        if not n:
            break
        out, err = demux.split(view[:n])
        if out:
            feed("stdout", out)
        if err:
            feed("stderr", err)
        if n < READ_SIZE and not kernel_paced:
            time.sleep(PACE)  # let a chatty workload's next lines gather: see PACE
