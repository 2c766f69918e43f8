"""The attach-stream demultiplexer: frames of the engine's multiplexed stream, cut
anywhere between reads, come out as the same stdout and stderr bytes. No engine."""

from __future__ import annotations

import random
import socket
import struct
import threading

from labctl.runtime.logs import Output
from labctl.runtime.attach import StreamDemux, pump


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_cut_at_every_byte_boundary_give_the_same_streams() -> None:
    data = frame(1, b'{"event":"a"}\n') + frame(2, b"warn\n") + frame(1, b"") + frame(1, b"x" * 300)
    for cut in range(1, len(data)):
        d = StreamDemux()
        a_out, a_err = d.split(memoryview(bytearray(data[:cut])))
        b_out, b_err = d.split(data[cut:])
        assert a_out + b_out == b'{"event":"a"}\n' + b"x" * 300
        assert a_err + b_err == b"warn\n"


def test_random_pieces_of_many_frames() -> None:
    rng = random.Random(7)
    frames, want = [], {1: b"", 2: b""}
    for _ in range(500):
        s, p = rng.choice((1, 1, 2)), rng.randbytes(rng.randint(0, 200))
        frames.append(frame(s, p))
        want[s] += p
    data, pos, d, got = b"".join(frames), 0, StreamDemux(), [b"", b""]
    while pos < len(data):
        k = rng.randint(1, 900)
        out, err = d.split(data[pos:pos + k])
        got[0] += out
        got[1] += err
        pos += k
    assert got == [want[1], want[2]]


def test_one_read_is_one_feed_per_stream() -> None:
    # 1000 one-line frames already waiting in the socket: one feed, not 1000
    a, b = socket.socketpair()
    lines = [b'{"event":"wrote","count":%d}\n' % i for i in range(1, 1001)]
    a.sendall(b"".join(frame(1, line) for line in lines) + frame(2, b"bye\n"))
    a.close()
    feeds: list[tuple[str, int]] = []
    out = Output()
    seen: list[int] = []
    out.watch_events(lambda evs: seen.extend(e["count"] for e in evs), "wrote")

    def feed(stream: str, chunk: bytes) -> None:
        feeds.append((stream, len(chunk)))
        out.feed(stream, chunk)

    t = threading.Thread(target=pump, args=(b, feed))
    t.start()
    t.join(10)
    out.close()
    assert seen == list(range(1, 1001)) and out.stderr == ["bye"]
    assert len(feeds) <= 4  # the socket buffer may split the backlog, never per frame


def test_a_chatty_stream_is_read_at_most_once_per_pace() -> None:
    """One-line frames arriving faster than the pace are gathered: at most about one read
    (one feed) per PACE while they flow, every line in order."""
    import time

    from labctl.runtime import attach

    a, b = socket.socketpair()
    n = 300
    feeds: list[bytes] = []

    def writer() -> None:
        for i in range(1, n + 1):
            a.sendall(frame(1, b"%d\n" % i))
            time.sleep(0.0001)
        a.close()

    w = threading.Thread(target=writer)
    t0 = time.monotonic()
    w.start()
    pump(b, lambda stream, chunk: feeds.append(chunk))
    took = time.monotonic() - t0
    w.join()
    assert b"".join(feeds) == b"".join(b"%d\n" % i for i in range(1, n + 1))
    assert len(feeds) <= took / attach.PACE + 2, (len(feeds), took)


def test_a_lone_line_is_fed_without_waiting_for_more() -> None:
    """The kernel holds a read for GATHER bytes only up to PACE: one line, and nothing after
    it until labctl has seen it, is fed; a line after an idle spell too; then the end."""
    import time

    from labctl.runtime import attach

    a, b = socket.socketpair()
    fed: list[bytes] = []
    changed = threading.Condition()

    def feed(stream: str, chunk: bytes) -> None:
        with changed:
            fed.append(chunk)
            changed.notify_all()

    t = threading.Thread(target=pump, args=(b, feed), daemon=True)
    t.start()
    try:
        for line in (b"one\n", b"two\n"):
            a.sendall(frame(1, line))
            with changed:
                assert changed.wait_for(lambda: b"".join(fed).endswith(line), timeout=10), fed
            time.sleep(attach.PACE * 20)  # idle: the held read times out, the pump waits for a byte
        assert b.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == attach.GATHER
    finally:
        a.close()
    t.join(10)
    assert not t.is_alive() and b"".join(fed) == b"one\ntwo\n"


def test_only_a_unix_socket_is_gathered_by_the_kernel() -> None:
    from labctl.runtime.attach import gathered

    a, b = socket.socketpair()
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert gathered(a) and not gathered(tcp)
        assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1  # left as it was
    finally:
        for s in (a, b, tcp):
            s.close()


class _FakeAPI:
    """The two SDK calls a DockerContainer makes to attach: records each attach's query."""

    def __init__(self) -> None:
        self.attaches: list[dict] = []
        self.ends: list[socket.socket] = []

    def attach_socket(self, container_id: str, params: dict) -> socket.socket:
        ours, engine_end = socket.socketpair()
        self.attaches.append(dict(params))
        self.ends.append(engine_end)
        return ours


class _FakeObj:
    name, id = "labctl-x-writer", "c0ffee"

    def __init__(self) -> None:
        self.starts = 0

    def start(self) -> None:
        self.starts += 1


def test_every_attach_asks_for_the_live_stream_only_never_the_log_replay() -> None:
    # Docker connects the output pipes before it answers the attach and reads the log replay
    # after: with logs=1 a line written in between arrives twice (the first lines of a
    # container started right after the attach, a few runs in a hundred under load).
    from labctl.runtime.docker_container import DockerContainer

    api, obj = _FakeAPI(), _FakeObj()
    c = DockerContainer(api, obj, "writer")  # type: ignore[arg-type]
    c.start()
    api.ends[0].sendall(frame(1, b'{"event":"start"}\n'))
    api.ends[0].close()  # the run ends: its stream closes
    c._reader.join(5)
    c.poll_exit = lambda: object()  # type: ignore[method-assign]  # exited: a start attaches anew
    c.start()
    assert obj.starts == 2 and len(api.attaches) == 2
    assert all(a["logs"] == 0 and a["stream"] == 1 for a in api.attaches)
    api.ends[1].close()
    c._reader.join(5)
    assert c.output.line_counts["stdout"] == 1


class _ExitedObj(_FakeObj):
    """An exited container as the engine's inspect shows it (OOMKilled as given)."""

    def __init__(self, oom_flag: bool, memory: int = 48 << 20) -> None:
        super().__init__()
        self.attrs = {"State": {"Status": "exited", "OOMKilled": oom_flag, "ExitCode": 137,
                                "StartedAt": "2026-12-04T21:20:11.123456789Z"},
                      "HostConfig": {"Memory": memory}}

    def reload(self) -> None:
        pass


class _EventsAPI(_FakeAPI):
    """``events()`` answering from a list of engine events; records each query."""

    def __init__(self, events: list[dict]) -> None:
        super().__init__()
        self.events_given = events
        self.queries: list[dict] = []

    def events(self, **query: object) -> list[dict]:
        self.queries.append(query)
        return list(self.events_given)


def _exited(api: _FakeAPI, obj: _FakeObj, code: int = 137):
    from labctl.runtime.docker_container import DockerContainer

    c = DockerContainer(api, obj, "writer")  # type: ignore[arg-type]
    api.ends[0].close()
    return c._record_exit(code)


def test_an_oom_event_logged_after_the_exit_still_counts_as_oom_killed() -> None:
    # Docker sets State.OOMKilled only when containerd's OOM notice is handled before the
    # exit; under load it can come a few ms later: the flag stays false, the event is logged.
    api = _EventsAPI([{"Type": "container", "Action": "oom", "id": "c0ffee"}])
    status = _exited(api, _ExitedObj(oom_flag=False))
    assert status.oom_killed is True
    q = api.queries[0]
    assert q["filters"] == {"type": "container", "container": "c0ffee", "event": "oom"}
    assert q["since"] <= 1796419211 and q["until"] > q["since"]  # from its start, a bounded wait


def test_no_oom_event_and_no_flag_is_not_oom_killed() -> None:
    api = _EventsAPI([])
    assert _exited(api, _ExitedObj(oom_flag=False)).oom_killed is False
    assert len(api.queries) == 1


def test_the_event_log_is_asked_only_for_a_sigkill_of_a_memory_limited_container() -> None:
    oom = [{"Type": "container", "Action": "oom", "id": "c0ffee"}]
    for obj, code in ((_ExitedObj(oom_flag=False, memory=0), 137),  # no memory limit
                      (_ExitedObj(oom_flag=False), 1),                # not SIGKILLed
                      (_ExitedObj(oom_flag=True), 137)):              # the flag says it already
        api = _EventsAPI(oom)
        status = _exited(api, obj, code)
        assert api.queries == [] and status.oom_killed is (code == 137 and obj.attrs["State"]["OOMKilled"])


def test_a_sigkill_labctl_sent_itself_is_not_looked_up_as_an_oom_kill() -> None:
    # a kill step or a stop past its grace: exit 137 is labctl's doing, no wait on the log
    api = _EventsAPI([{"Type": "container", "Action": "oom", "id": "c0ffee"}])
    from labctl.runtime.docker_container import DockerContainer

    obj = _ExitedObj(oom_flag=False)
    obj.kill = lambda signal: None  # type: ignore[attr-defined]
    c = DockerContainer(api, obj, "writer")  # type: ignore[arg-type]
    api.ends[0].close()
    c.kill("SIGUSR1")  # a go: not a kill
    c.kill("SIGKILL")
    assert c._record_exit(137).oom_killed is False and api.queries == []


class _RestartingAPI(_FakeAPI):
    """A container under a restart policy: ``inspect_container`` answers the given
    statuses in turn (the last one for good); ``logs`` replays the engine's log as it
    stood at each call, the stdout replays given in turn (the last one for good)."""

    def __init__(self, statuses: list[str], stdout_replays: list[list[bytes]]) -> None:
        super().__init__()
        self.statuses, self.replays = statuses, stdout_replays
        self.follows: list[bool] = []  # the follow flag of each stdout log call

    def inspect_container(self, container_id: str) -> dict:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"State": {"Status": status, "Restarting": False}}

    def logs(self, container_id: str, stdout: bool, stderr: bool, stream: bool, follow: bool) -> list[bytes]:
        if not stdout:
            return []
        self.follows.append(follow)
        return self.replays.pop(0) if len(self.replays) > 1 else self.replays[0]


def _runs_relayed(attach: bytes, api: _RestartingAPI, follow_log: bool = True) -> list[tuple[int, str]]:
    """(run, event) of every event once the attach stream gave ``attach`` and ended."""
    from labctl.runtime.docker_container import DockerContainer

    got: list[dict] = []
    out = Output()
    out.watch_events(got.extend)
    c = DockerContainer(api, _FakeObj(), "app", out, restarts=True,  # type: ignore[arg-type]
                        follow_log=follow_log)
    c.start()
    api.ends[0].sendall(frame(1, attach))
    api.ends[0].close()
    assert out.ended.wait(5)
    return [(e["run"], e["event"]) for e in got]


RUN = b'{"event":"start"}\n{"event":"cleaned"}\n{"event":"filled"}\n'
FOUR_RUNS = [(r, e) for r in (1, 2, 3, 4) for e in ("start", "cleaned", "filled")]


def test_a_log_replay_ending_inside_a_line_leaves_it_for_the_next_replay() -> None:
    # A follow of the engine's log can stop inside a line (Podman sends a partial line
    # without its newline): counted as a line, it made the next replay skip one line too
    # many, a run's `start` among them, and every later event was numbered a run short.
    whole = RUN * 4
    cut = whole.index(b"filled", len(RUN) * 2) + 3  # inside run 3's `filled`
    api = _RestartingAPI(["running", "running", "exited"],
                         [[whole[:cut]], [whole[:len(RUN) * 3], whole[len(RUN) * 3:]], [whole]])
    assert _runs_relayed(RUN, api) == FOUR_RUNS


def test_a_piece_the_attach_stream_ended_on_is_taken_whole_from_the_log() -> None:
    # The attach stream of run 1 ended inside its last line: that piece is not a line of
    # its own, and the log's whole line must not be glued to it.
    whole = RUN * 4
    attach = RUN[:-5]
    api = _RestartingAPI(["exited"], [[whole]])
    assert _runs_relayed(attach, api) == FOUR_RUNS


def test_the_final_replay_keeps_a_last_line_without_newline() -> None:
    whole = RUN * 2 + RUN[:-1]  # the last run's last line ends without a newline
    api = _RestartingAPI(["exited"], [[whole]])
    assert _runs_relayed(RUN, api) == FOUR_RUNS[:9]


class _MisorderingAPI(_RestartingAPI):
    """Podman 4 under load: its followed log gives run 3's `filled` where run 3's `start`
    belongs, while a replay without follow is in order (the replays given in turn)."""

    MISORDERED = RUN * 2 + b'{"event":"filled"}\n'

    def logs(self, container_id: str, stdout: bool, stderr: bool, stream: bool, follow: bool) -> list[bytes]:
        replay = super().logs(container_id, stdout, stderr, stream, follow)
        return [self.MISORDERED] if follow and stdout else replay


def test_an_engine_whose_followed_log_misorders_lines_is_read_by_replays() -> None:
    # Fed as it came, run 3 lost its start and run 4 was numbered 3; without follow only
    # the in-order replays are read
    whole = RUN * 4
    api = _MisorderingAPI(["running", "running", "running", "exited"],
                          [[whole[:len(RUN) * 2]], [whole[:len(RUN) * 3]], [whole[:len(RUN) * 3 + 5]], [whole]])
    assert _runs_relayed(RUN, api, follow_log=False) == FOUR_RUNS
    assert api.follows and not any(api.follows)


def test_a_followed_log_is_fed_as_it_comes() -> None:
    # the same engine, its follow trusted (right for Docker's): the misordered line reaches
    # the checks, so the test above fails if replays are not what read Podman's log
    whole = RUN * 4
    api = _MisorderingAPI(["running", "exited"], [[whole]])
    assert _runs_relayed(RUN, api, follow_log=True) != FOUR_RUNS
    assert api.follows[0] is True
