"""labctl bench without an engine: statistics, plan, JSON shaping, targets, table, errors."""

from __future__ import annotations

import json
import sys

import pytest

from labctl.bench import records
from labctl.bench.conditions import Machine, this_machine
from labctl.bench.records import Config, Record, Report, parse_config, summarize
from labctl.bench.launch import PairError, PairSpec, result_from_events
from labctl.errors import UsageError

MACHINE = Machine("Test CPU @ 3 GHz", "6.1.0-test", 2, "x86_64")
CONTRACT_FIELDS = {"mechanism", "placement", "size", "rtt_ns_median", "rtt_ns_p99", "msgs_per_s", "bytes_per_s"}


def rec(mech: str, placement: str, size: int, median: int, bps: int = 0) -> Record:
    return Record(mech, placement, size, median, median * 2, 1_000_000_000 // median, bps or 2 * size * 10**9 // median)


def report(*records: Record, pinned: bool = True, errors: tuple[str, ...] = ()) -> Report:
    return Report(MACHINE, Config(), tuple(records), (0, 1) if pinned else (), errors)


# ==== statistics ====


def test_summarize_odd_and_even_counts() -> None:
    assert summarize([5, 1, 3]).median == 3
    assert summarize([4, 1, 3, 2]).median == 2  # mean of the middle pair, floored
    s = summarize(range(1, 101))
    assert (s.n, s.minimum, s.maximum, s.p99, s.mean) == (100, 1, 100, 99, 50)


def test_p99_is_nearest_rank() -> None:
    assert records.percentile([10], 99) == 10
    assert records.percentile(list(range(1, 201)), 99) == 198
    # one huge outlier in 1000 does not move p99
    samples = [100] * 999 + [10**9]
    assert summarize(samples).p99 == 100
    assert summarize(samples).maximum == 10**9


def test_summarize_refuses_no_samples() -> None:
    with pytest.raises(ValueError):
        summarize([])


# ==== plan and parsing ====


def test_iterations_scale_down_for_big_messages_but_keep_a_floor() -> None:
    c = Config(iterations=20000)
    assert c.iterations_for(64) == 20000
    assert c.iterations_for(4096) == 20000
    assert c.iterations_for(65536) == 1250
    assert c.iterations_for(1048576) == records.MIN_ITERATIONS
    assert Config(iterations=5).iterations_for(1048576) == 5  # a tiny run stays tiny
    assert c.warmup_for(64) == 2000 and Config(iterations=5).warmup_for(64) == 10


def test_parse_config_defaults_and_subsets() -> None:
    c = parse_config("", "64,4k,1m", "", 100, True, 5.0)
    assert c.mechanisms == records.MECHANISMS and c.placements == ("host", "container")
    assert c.sizes == (64, 4096, 1048576)
    c = parse_config("fifo, sysv-shm-spin,fifo", "64", "container", 10, False, 1.0)
    assert c.mechanisms == ("fifo", "sysv-shm-spin") and c.placements == ("container",) and not c.pin


@pytest.mark.parametrize("mechs, sizes, places, iters, match", [
    ("shm", "64", "", 10, "unknown mechanism 'shm'"),
    ("", "64", "vm", 10, "unknown placement 'vm'"),
    ("", "abc", "", 10, "bad size 'abc'"),
    ("", "0", "", 10, "out of range"),
    ("", "128m", "", 10, "out of range"),
    ("", ",", "", 10, "at least one size"),
    ("", "64", "", 0, "--iterations"),
])
def test_parse_config_errors_are_usage_errors(mechs: str, sizes: str, places: str, iters: int, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_config(mechs, sizes, places, iters, True, 5.0)


def test_pair_argv_pins_server_and_client_apart() -> None:
    spec = PairSpec("unix-socket", 4096, 100, 10, 5.0, True)
    server = spec.argv("server", dir="/bench")
    client = spec.argv("client", dir="/bench")
    assert server[:5] == ["bench", "--role", "server", "--mech", "unix-socket"]
    assert server[server.index("--pin") + 1] == "0" and client[client.index("--pin") + 1] == "1"
    # the server outlives the client's deadline so it can see the client finish
    assert int(server[server.index("--timeout") + 1]) > int(client[client.index("--timeout") + 1]) == 5000
    assert "--pin" not in PairSpec("fifo", 64, 1, 1, 1.0, False).argv("client")


# ==== the client's result event ====


EVENT = {"event": "result", "role": "client", "mechanism": "sysv-shm-spin", "size": 64, "iterations": 1000,
         "rtt_ns_median": 150, "rtt_ns_p99": 300, "rtt_ns_min": 90, "rtt_ns_mean": 170,
         "msgs_per_s": 6_000_000, "bytes_per_s": 768_000_000, "pinned": True, "complete": True}


def test_record_from_result_event() -> None:
    r = records.record_from_event(EVENT, "container")
    assert (r.mechanism, r.placement, r.size, r.rtt_ns_median, r.rtt_ns_p99) == ("sysv-shm-spin", "container", 64, 150, 300)
    assert r.pinned and r.complete and r.iterations == 1000


def test_result_from_events_reports_the_clients_error() -> None:
    events = [{"event": "start"}, {"event": "error", "message": "shmget: No such file or directory", "exit": 30}]
    with pytest.raises(PairError, match="shmget: No such file or directory"):
        result_from_events(events, "host", "x", "")
    with pytest.raises(PairError, match="no result"):
        result_from_events([{"event": "start"}], "host", "x", "tail")
    with pytest.raises(PairError, match="malformed"):
        result_from_events([{"event": "result", "mechanism": "fifo"}], "host", "x", "")
    assert result_from_events([EVENT], "host", "x", "").placement == "host"


# ==== JSON contract ====


def test_json_has_the_documented_shape() -> None:
    doc = to_doc(report(rec("sysv-shm-spin", "host", 64, 100), rec("sysv-shm-spin", "container", 64, 104),
                        rec("memcpy", "host", 1048576, 10000, bps=100 * 2**30)))
    assert set(doc["machine"]) >= {"cpu", "kernel", "cores"}
    assert doc["machine"]["cores"] == 2 and doc["pinned"] is True
    assert doc["pinned_cpus"] == {"server": 0, "client": 1}
    assert len(doc["results"]) == 3
    for r in doc["results"]:
        assert CONTRACT_FIELDS <= set(r)
        assert r["placement"] in ("host", "container")
    assert {t["name"]: t["met"] for t in doc["targets"]}["sysv-shm-spin container/host median at 64 B"] is True


def to_doc(rep: Report) -> dict:
    # through the JSON text, as a consumer sees it
    return json.loads(json.dumps(records.to_json(rep)))


def test_unpinned_run_says_so() -> None:
    doc = to_doc(report(pinned=False))
    assert doc["pinned"] is False and doc["pinned_cpus"] is None


# ==== targets ====


def test_targets_as_ratios() -> None:
    rep = report(
        rec("sysv-shm-spin", "host", 64, 100), rec("sysv-shm-spin", "container", 64, 110),
        rec("sysv-shm-spin", "host", 4096, 400), rec("sysv-shm-spin", "container", 4096, 400),
        rec("tcp-shared-netns", "container", 64, 30_000), rec("tcp-bridge", "container", 64, 1_000),
        rec("unix-socket", "container", 64, 5_000),
        rec("memcpy", "host", 1048576, 10_000, bps=100), rec("sysv-shm-spin", "host", 1048576, 1, bps=60),
        rec("sysv-shm-spin", "container", 1048576, 1, bps=40),
    )
    got = {t.name: (round(t.value, 2) if t.value is not None else None, t.met) for t in rep.targets()}
    assert got["sysv-shm-spin container/host median at 64 B"] == (1.1, False)
    assert got["sysv-shm-spin container/host median at 4096 B"] == (1.0, True)
    assert got["tcp-shared-netns / sysv-shm-spin median at 64 B (containers)"] == (272.73, True)
    assert got["tcp-bridge / sysv-shm-spin median at 64 B (containers)"] == (9.09, False)
    assert got["unix-socket / sysv-shm-spin median at 64 B (containers)"] == (45.45, True)
    assert got["sysv-shm-spin 1 MiB throughput / memcpy (host)"] == (0.6, True)
    assert got["sysv-shm-spin 1 MiB throughput / memcpy (container)"] == (0.4, False)


def test_unmeasured_targets_are_neither_met_nor_missed() -> None:
    assert all(t.met is None and t.value is None for t in report().targets())


# ==== table ====


def test_table_lists_pairs_ratio_machine_and_targets() -> None:
    rep = Report(MACHINE, Config(mechanisms=("sysv-shm-spin", "fifo"), sizes=(64,)),
                 (rec("sysv-shm-spin", "host", 64, 100), rec("sysv-shm-spin", "container", 64, 150),
                  rec("fifo", "host", 64, 5_000)), (0, 1), ("tcp-bridge 64 B in containers: refused",))
    text = records.render_table(rep)
    assert "Test CPU @ 3 GHz, 2 cores, kernel 6.1.0-test; server on CPU 0, client on CPU 1" in text
    row = next(line for line in text.splitlines() if line.startswith("sysv-shm-spin"))
    assert "100 ns" in row and "150 ns" in row and "1.50" in row
    fifo = next(line for line in text.splitlines() if line.startswith("fifo"))
    assert "5.0 us" in fifo and fifo.rstrip().endswith("-")
    assert "MISSED       sysv-shm-spin container/host median at 64 B: 1.50" in text
    assert "error: tcp-bridge 64 B in containers: refused" in text


@pytest.mark.parametrize("ns, text", [(850, "850 ns"), (12_345, "12.3 us"), (4_560_000, "4.56 ms")])
def test_human_ns(ns: int, text: str) -> None:
    assert records.human_ns(ns) == text


def test_machine_reads_cpuinfo() -> None:
    m = this_machine("processor : 0\nmodel name\t: Fancy CPU 9000\n")
    assert m.cpu == "Fancy CPU 9000" and m.cores >= 1 and m.kernel


# ==== chart ====


def test_chart_without_matplotlib_is_a_clear_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.bench import chart

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    with pytest.raises(UsageError, match=r"pip install 'labctl\[bench\]'"):
        chart.require_matplotlib()


def test_chart_is_written(tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("matplotlib")  # the optional `bench` extra
    from labctl.bench import chart

    rep = Report(MACHINE, Config(mechanisms=("sysv-shm-spin", "fifo"), sizes=(64, 4096)),
                 (rec("sysv-shm-spin", "host", 64, 100), rec("sysv-shm-spin", "container", 64, 150),
                  rec("fifo", "container", 4096, 9_000)), (0, 1))
    out = chart.write_chart(rep, tmp_path / "sub" / "bench.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_interrupt_during_a_container_create_lands_after_it_and_the_sweep_finds_the_container() -> None:
    """Ctrl-C while the engine creates a bench container: the create is not cut short (the
    engine would make the container after the sweep), the interrupt is raised once it
    returns, and the pair's sweep by label runs after the container exists."""
    import os
    import signal as sig

    from labctl.bench.launch import ContainerPairs, PairSpec
    from labctl.errors import Interrupted

    log: list[str] = []

    class Engine:
        def start_container(self, spec, role):  # noqa: ANN001, ANN201
            os.kill(os.getpid(), sig.SIGINT)  # arrives while the engine works
            log.append(f"created {role}")
            return object()

        def remove_labelled(self, labels):  # noqa: ANN001, ANN201
            log.append(f"sweep {labels.get('io.labctl.role', 'all')}")
            return [], []

    def on_signal(signum: int, _frame: object) -> None:  # the bench command's handler
        raise Interrupted(signum)

    old = sig.signal(sig.SIGINT, on_signal)
    try:
        pairs = ContainerPairs(Engine(), "img", "0123456789abcdef")  # type: ignore[arg-type]
        spec = PairSpec("sysv-shm-futex", 64, 10, 1, 5.0, False)
        with pytest.raises(Interrupted):
            pairs.run(spec)
    finally:
        sig.signal(sig.SIGINT, old)
    assert log[0] == "created server" and "sweep server" in log[1:], log
    assert sig.getsignal(sig.SIGINT) is old  # the bench's own handler is back
