"""Paired rounds, spread and the noise verdict on synthetic samples; conditions parsing;
the clock-tick and batch fields. No engine, no timing."""

from __future__ import annotations

import json

import pytest

from labctl.bench import conditions, summarize_rounds
from labctl.bench.conditions import Machine
from labctl.bench.records import Config, Record, Report, record_from_event, render_table, to_json
from labctl.bench.rounds import combine, halves, judge, pair_rounds, quartiles, verdict

MACHINE = Machine("Test CPU", "6.1.0-test", 2, "x86_64")


def rnd(placement: str, median: int, mech: str = "sysv-shm-spin", size: int = 64) -> Record:
    return Record(mech, placement, size, median, median * 2, 10**9 // median, 2 * size * 10**9 // median,
                  iterations=1000, batch=4, clock_tick_ns=30)


def rounds(host: list[int], ctr: list[int], **kw: object) -> tuple[list[Record], list[Record]]:
    return [rnd("host", h, **kw) for h in host], [rnd("container", c, **kw) for c in ctr]  # type: ignore[arg-type]


def test_ratio_is_taken_per_round_not_from_pooled_medians() -> None:
    # the machine slows down 3x in rounds 3-5 for both placements alike: per-round
    # ratios stay 1.0 while a ratio of pooled medians would not
    h, c = rounds([100, 100, 300, 300, 300], [100, 100, 300, 300, 300])
    p = pair_rounds(h, c)
    assert p.ratios == (1.0,) * 5 and p.ratio_median == 1.0 and p.verdict == "stable"
    assert (p.host_ns, p.container_ns) == (300, 300)


def test_one_disturbed_round_is_spread_not_noise() -> None:
    h, c = rounds([100] * 5, [100, 101, 99, 100, 1600])  # a neighbour during one container pass
    p = pair_rounds(h, c)
    assert p.ratio_median == pytest.approx(1.0) and p.ratio_max == pytest.approx(16.0)
    assert p.verdict == "stable"
    assert "range 0.99-16.00" in p.spread()


def test_rounds_that_disagree_are_flagged_noisy() -> None:
    # the observed draws for one row: 0.87, 1.08, 0.30 and two more alike
    h, c = rounds([100] * 5, [87, 108, 30, 95, 60])
    p = pair_rounds(h, c)
    assert p.verdict == "noisy" and not p.stable
    table = render_table(Report(MACHINE, Config(sizes=(64,), mechanisms=("sysv-shm-spin",)), tuple(combine(x) for x in (h, c)),
                                paired=(p,)))
    assert "NOISY" in table


def test_fewer_than_three_rounds_give_no_verdict() -> None:
    assert verdict([1.0, 1.0]) == "too few rounds"
    assert verdict([1.0, 1.01, 0.99]) == "stable"


def test_verdict_comes_from_the_interval_on_the_median() -> None:
    # three rounds of five agree exactly: the median is pinned whatever the other two do
    assert verdict([1.0, 1.0, 1.09, 1.0, 0.92]) == "stable"
    assert verdict([1.0, 1.15, 1.15, 0.85, 0.85]) == "noisy"
    # the same rounds in a run whose rows typically scatter by 10 %: not pinned within 5 %
    assert verdict([1.0, 1.0, 1.09, 1.0, 0.92], floor=0.10) == "noisy"


def test_quartiles_inclusive() -> None:
    assert quartiles([1, 2, 3, 4, 5]) == (2, 3, 4)
    assert quartiles([7]) == (7, 7, 7)
    with pytest.raises(ValueError):
        quartiles([])


def test_pairing_refuses_mismatched_rounds() -> None:
    h, c = rounds([100, 100], [100])
    with pytest.raises(ValueError, match="as many"):
        pair_rounds(h, c)
    with pytest.raises(ValueError, match="different rows"):
        pair_rounds([rnd("host", 100)], [rnd("container", 100, size=4096)])


def test_a_failed_round_leaves_the_row_unpaired_but_reported() -> None:
    h, c = rounds([100, 100, 100], [100, 100])
    records, paired = summarize_rounds(Config(mechanisms=("sysv-shm-spin",), sizes=(64,)), [*h, *c])
    assert {r.placement for r in records} == {"host", "container"}
    assert paired == []


def test_combine_takes_medians_over_rounds() -> None:
    r = combine([rnd("host", m) for m in (100, 300, 200)])
    assert (r.rtt_ns_median, r.rounds, r.iterations, r.batch) == (200, 3, 3000, 4)


def test_json_keeps_the_contract_and_adds_paired_rows_and_conditions() -> None:
    h, c = rounds([100] * 3, [110] * 3)
    cfg = Config(mechanisms=("sysv-shm-spin",), sizes=(64,), rounds=3)
    records, paired = summarize_rounds(cfg, [*h, *c])
    cond = conditions.summary(conditions.snapshot("0.5 0.4 0.3 1/100 42", "cpu 100 0 100 700 0 0 0 100 0 0\n"),
                              conditions.snapshot("1.5 0.6 0.4 1/100 42", "cpu 200 0 200 1400 0 0 0 200 0 0\n"))
    doc = json.loads(json.dumps(to_json(Report(MACHINE, cfg, tuple(records), rounds=(*h, *c), paired=tuple(paired),
                                               conditions=cond))))
    assert {"mechanism", "placement", "size", "rtt_ns_median", "rtt_ns_p99", "msgs_per_s", "bytes_per_s"} <= set(doc["results"][0])
    assert doc["paired"][0]["ratio_median"] == pytest.approx(1.1) and doc["paired"][0]["verdict"] == "stable"
    assert len(doc["rounds"]) == 6 and doc["config"]["rounds"] == 3
    assert doc["conditions"]["steal_pct"] == pytest.approx(10.0)
    assert doc["conditions"]["start"]["loadavg_1m"] == 0.5 and doc["conditions"]["end"]["loadavg_1m"] == 1.5
    # the 64 B target uses the paired median; a noisy row says so next to its number
    target = next(t for t in Report(MACHINE, cfg, tuple(records), paired=tuple(paired)).targets() if "64 B" in t.name)
    assert target.value == pytest.approx(1.1) and target.detail == ""


def test_noisy_row_target_says_so() -> None:
    h, c = rounds([100] * 5, [87, 108, 30, 95, 60])
    cfg = Config(mechanisms=("sysv-shm-spin",), sizes=(64,))
    records, paired = summarize_rounds(cfg, [*h, *c])
    t = next(t for t in Report(MACHINE, cfg, tuple(records), paired=tuple(paired)).targets() if "64 B" in t.name)
    assert "too noisy" in t.detail


def test_conditions_without_steal_column_or_files() -> None:
    s = conditions.snapshot("garbage", "cpu 1 2 3\n")
    assert s.loadavg == (0.0, 0.0, 0.0) and s.steal_ticks is None
    assert conditions.summary(s, s)["steal_pct"] is None


def test_result_event_carries_batch_and_clock_tick() -> None:
    ev = {"mechanism": "sysv-shm-spin", "size": 64, "rtt_ns_median": 150, "rtt_ns_p99": 300, "msgs_per_s": 1,
          "bytes_per_s": 1, "batch": 7, "clock_tick_ns": 30}
    r = record_from_event(ev, "host")
    assert (r.batch, r.clock_tick_ns) == (7, 30)
    old = record_from_event({k: v for k, v in ev.items() if k not in ("batch", "clock_tick_ns")}, "host")
    assert (old.batch, old.clock_tick_ns) == (1, 0)


def test_halves_of_the_run_that_disagree_are_noisy_even_with_a_narrow_iqr() -> None:
    # a slow shift during the run: the first rounds near 0.89, the last near 1.0 (the
    # 4 KiB row's two runs in one); the IQR alone (0.89-1.00 around 0.90) would pass
    h, c = rounds([100] * 6, [89, 89, 90, 99, 100, 100])
    p = pair_rounds(h, c)
    assert p.halves == pytest.approx((0.89, 1.0))
    assert p.verdict == "noisy" and "halves of the run disagree" in p.why
    assert p.to_json()["halves"] == [0.89, 1.0] and p.to_json()["why"] == p.why


def test_halves_that_agree_keep_the_row_stable() -> None:
    verdict_, why = judge([1.0, 1.02, 0.99, 1.01, 1.0])
    assert (verdict_, why) == ("stable", "")
    assert halves([1.0, 1.02, 0.99, 1.01, 1.0]) == (1.01, 1.0)


def test_interval_failure_is_named() -> None:
    verdict_, why = judge([1.0, 1.15, 1.15, 0.85, 0.85])
    assert verdict_ == "noisy" and why.startswith("interval 0.79-1.26 (+-23.2 %) after 5 rounds wider than +-5 %")


def test_both_placements_of_a_round_time_batches_of_one_size(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    """The round's first pair picks its batch (here: 3 on the host, 5 in containers, as
    warm-ups in different moments would); its partner is told that batch, so the ratio
    compares medians of equally long samples. The next round picks afresh."""
    import labctl.bench as bench

    asked: list[tuple[str, int, int]] = []  # placement, size, batch asked for

    class Fake:
        def __init__(self, placement: str, auto: int) -> None:
            self.placement, self.auto = placement, auto

        def run(self, spec):  # noqa: ANN001, ANN201
            asked.append((self.placement, spec.size, spec.batch))
            return Record(spec.mechanism, self.placement, spec.size, 500, 900, 2_000_000, 1, iterations=10,
                          batch=spec.batch or self.auto)

        def close(self):  # noqa: ANN201
            return [], []

    monkeypatch.setattr(bench, "HostPairs", lambda *a, **k: Fake("host", 3))
    monkeypatch.setattr(bench, "ContainerPairs", lambda *a, **k: Fake("container", 5))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = Config(("sysv-shm-spin",), (64, 4096), ("host", "container"), 100, False, 5.0, memcpy=False, rounds=3)
    report = bench.run_bench(object(), "img", tmp_path / "shmlab", cfg, progress=lambda _m: None, run_id="r" * 36)
    assert len(asked) == 2 * 2 * 3
    for i in range(0, len(asked), 2):
        (p1, s1, b1), (p2, s2, b2) = asked[i], asked[i + 1]
        assert s1 == s2 and p1 != p2
        assert b1 == 0 and b2 == {"host": 3, "container": 5}[p1]
    recs = list(report.rounds)
    assert all(a.batch == b.batch for a, b in zip(recs[::2], recs[1::2]))
