"""The interval verdict and adaptive rounds on synthetic samples: rows that are noisy,
rows that converge after extra rounds, rows that hit a bound (rounds or time). No
engine; the end-to-end loop runs on fake pairs and a fake clock."""

from __future__ import annotations

import math
from itertools import cycle

import pytest

from labctl.bench import rounds as R
from labctl.bench.records import Config, Record, parse_config, render_table, to_json
from labctl.errors import UsageError


def ratios(logs: list[float], n: int | None = None) -> list[float]:
    """Per-round ratios exp(log) (so the log-scale spread is exact), the first n of a cycle."""
    src = cycle(logs)
    return [math.exp(next(src)) for _ in range(n or len(logs))]


TIGHT = [0.01, -0.01, 0.0, 0.02, -0.02, 0.01, -0.01]        # MAD 0.01: sigma 1.5 %
CONVERGING = [0.04, -0.04, 0.0, 0.06, -0.06, 0.02, -0.02, 0.05, -0.05, 0.0]  # sigma ~5.9 %
WILD = [0.3, -0.3, 0.0, 0.4, -0.2]                          # sigma ~44 %


def test_spread_is_a_robust_log_scale_sigma() -> None:
    assert R.spread(ratios([0.0, 0.1, -0.1, 0.1, -0.1])) == pytest.approx(1.4826 * 0.1)
    # one wild round barely moves it (a standard deviation would be ~5x larger)
    assert R.spread(ratios([0.0, 0.01, -0.01, 0.01, 2.7])) == pytest.approx(1.4826 * 0.01)
    assert R.spread([1.0]) == 0.0
    with pytest.raises(ValueError):
        R.spread([1.0, 0.0])


def test_typical_spread_is_the_median_over_rows_with_enough_rounds() -> None:
    rows = [ratios(TIGHT, 5), ratios(CONVERGING, 5), ratios(WILD, 5), [1.0, 3.0]]  # the last: too few
    assert R.typical_spread(rows) == pytest.approx(R.spread(ratios(CONVERGING, 5)))
    assert R.typical_spread([]) == 0.0


def test_half_width_shrinks_with_rounds_down_to_the_between_run_term() -> None:
    assert R.half_width(5, 0.06) == pytest.approx(math.hypot(2 * math.sqrt(math.pi / 2) * 0.06 / math.sqrt(5), 0.01))
    assert R.half_width(20, 0.06) < R.half_width(10, 0.06) < R.half_width(5, 0.06)
    assert R.half_width(10**6, 0.06) == pytest.approx(R.BETWEEN_RUNS, rel=1e-3)
    for sigma in (0.01, 0.045, 0.06, 0.08, 0.2):
        n = R.rounds_needed(sigma)
        assert R.half_width(n, sigma) <= R.TARGET
        assert n == R.MIN_ROUNDS_FOR_VERDICT or R.half_width(n - 1, sigma) > R.TARGET
    assert (R.rounds_needed(0.045), R.rounds_needed(0.06), R.rounds_needed(0.08)) == (6, 10, 17)


def test_a_tight_row_is_stable_at_five_rounds_with_its_interval() -> None:
    verdict, why = R.judge(ratios(TIGHT, 5))
    assert (verdict, why) == ("stable", "")
    a = R.assess(ratios(TIGHT, 5))
    assert a.half_width < R.TARGET and a.spread == pytest.approx(1.4826 * 0.01)


def test_the_floor_keeps_coinciding_rounds_from_looking_tight() -> None:
    """Five rounds that happen to agree, in a run whose rows typically scatter by 8 %:
    without the floor the row would be stable; with it, its interval is as wide as the
    machine's and it needs more rounds."""
    lucky = ratios([0.0, 0.005, -0.005, 0.0, 0.005])
    assert R.assess(lucky, floor=0.0).verdict == "stable"
    a = R.assess(lucky, floor=0.08, max_rounds=20)
    assert a.verdict == "open" and a.half_width > R.TARGET and "wider than +-5 %" in a.why
    assert R.judge(lucky, floor=0.08, max_rounds=20, ended=R.ENDED_TIME) == (
        "noisy", f"{a.why}; the time for extra rounds ran out")


def test_noisy_rows_are_given_up_when_even_max_rounds_would_not_do() -> None:
    a = R.assess(ratios(WILD, 5), floor=0.03, max_rounds=20)
    assert a.verdict == "noisy" and "even 20 rounds would not" in a.why
    # the old IQR rule let a row whose middle half sat within +-10 % pass; these rounds
    # scatter with sigma ~9 %: 5 rounds cannot pin the median within 5 %
    assert R.judge(ratios([0.0, 0.06, -0.06, 0.09, -0.09, 0.0]))[0] == "noisy"


def test_a_row_converges_after_extra_rounds() -> None:
    """Four rows: two tight, one converging, one wild (floor: the median spread). Extra
    rounds go to the converging row only, until its interval is within +-5 %."""
    rows = {"t1": ratios(TIGHT, 5), "t2": ratios(TIGHT[1:] + TIGHT[:1], 5),
            "c": ratios(CONVERGING, 5), "w": ratios(WILD, 5)}
    conv = ratios(CONVERGING, 30)
    taken = []
    for _ in range(20):
        if not (todo := R.plan_round(rows, max_rounds=20)):
            break
        taken.append(todo)
        for k in todo:
            rows[k] = conv[:len(rows[k]) + 1] if k == "c" else rows[k] + rows[k][:1]
    assert taken == [["c"]] * 3  # 5 -> 8 rounds
    floor = R.typical_spread(rows.values())
    verdicts = {k: R.judge(v, floor, 20)[0] for k, v in rows.items()}
    assert verdicts == {"t1": "stable", "t2": "stable", "c": "stable", "w": "noisy"}
    assert R.judge(conv[:5], floor, 20, ended=R.ENDED_TIME)[0] == "noisy"  # at 5 it was not


def test_max_rounds_bound_makes_the_row_noisy_with_its_interval() -> None:
    row = ratios(CONVERGING, 6)
    assert R.assess(row, floor=0.0, max_rounds=20).verdict == "open"
    a = R.assess(row, floor=0.0, max_rounds=6)
    assert a.verdict == "noisy" and "--max-rounds 6 reached" in a.why and "after 6 rounds" in a.why
    # a bound that could never be enough is known at once
    assert "would not" in R.assess(ratios(CONVERGING, 5), max_rounds=7).why


def test_halves_that_disagree_keep_a_narrow_row_open_then_noisy() -> None:
    drift = [0.94, 0.94, 0.945, 0.94, 0.94, 1.0, 1.0, 1.005, 1.0, 1.0]  # a 6 % shift mid-run
    a = R.assess(drift, floor=0.0, max_rounds=20)
    assert a.half_width <= R.TARGET and a.verdict == "open"
    assert a.why.startswith("halves of the run disagree: 0.94 vs 1.00 (6.0 % > 5 %)")
    assert R.assess(drift, floor=0.0, max_rounds=10).verdict == "noisy"


def test_the_time_left_picks_rows_needing_fewest_rounds_first() -> None:
    rows = {"near": ratios(CONVERGING, 9), "far": ratios(CONVERGING, 5),
            **{f"done{i}": ratios(TIGHT, 5) for i in range(3)}}  # the typical spread: 1.5 %
    cost = dict.fromkeys(rows, 2.0)
    assert R.plan_round(rows, 20) == ["near", "far"]  # no time bound: every open row
    assert R.plan_round(rows, 20, cost, remaining_s=1000.0) == ["near", "far"]
    # near needs 1 more round, far 5: both take 5 x 4 s = 20 s; with 10 s only near fits
    assert R.plan_round(rows, 20, cost, remaining_s=10.0) == ["near"]
    assert R.plan_round(rows, 20, cost, remaining_s=1.0) == []


def test_pair_rounds_reports_interval_and_json_fields() -> None:
    host = [Record("fifo", "host", 64, 1000, 2000, 1, 1) for _ in range(5)]
    ctr = [Record("fifo", "container", 64, round(1000 * r), 2000, 1, 1) for r in ratios(CONVERGING, 5)]
    p = R.pair_rounds(host, ctr, floor=0.03, max_rounds=20, ended=R.ENDED_TIME)
    assert p.verdict == "noisy" and "time for extra rounds ran out" in p.why
    lo, hi = p.interval
    assert lo < p.ratio_median < hi and hi / p.ratio_median == pytest.approx(math.exp(p.half_width))
    doc = p.to_json()
    assert doc["interval_pct"] == pytest.approx(100 * p.half_width, abs=0.01) and doc["rounds"] == 5
    assert doc["spread_floor_pct"] == 3.0 and doc["spread_pct"] == pytest.approx(5.93, abs=0.05)
    assert {"ratio_q1", "ratio_q3", "halves", "verdict", "why", "ratios"} <= set(doc)


def test_config_bounds() -> None:
    assert parse_config("", "64", "", 100, True, 5.0, 5).max_rounds == 20
    assert parse_config("", "64", "", 100, True, 5.0, 30).max_rounds == 30
    assert parse_config("", "64", "", 100, True, 5.0, 5, 5, 0.0).extra_time_s == 0.0
    with pytest.raises(UsageError, match="--max-rounds"):
        parse_config("", "64", "", 100, True, 5.0, 5, 4)
    with pytest.raises(UsageError, match="--extra-time"):
        parse_config("", "64", "", 100, True, 5.0, 5, None, -1.0)


# ==== the loop of run_bench, on fake pairs and a fake clock ====


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def fake_run(monkeypatch: pytest.MonkeyPatch, tmp_path, patterns: dict, cfg: Config,  # noqa: ANN001
             seconds: dict | None = None) -> tuple[dict, list]:
    """run_bench with every (mechanism, size) row's container/host ratios drawn in turn
    from ``patterns`` (log values), each pair taking ``seconds[row]`` (default 1 s) on a
    fake clock. Returns the JSON document and the pairs asked for, in order."""
    import labctl.bench as bench

    clock = Clock()
    monkeypatch.setattr(bench.time, "monotonic", clock)
    draws = {row: cycle(logs) for row, logs in patterns.items()}
    asked: list[tuple[str, int, str]] = []

    class Fake:
        def __init__(self, placement: str) -> None:
            self.placement = placement

        def run(self, spec):  # noqa: ANN001, ANN201
            row = (spec.mechanism, spec.size)
            asked.append((*row, self.placement))
            clock.t += (seconds or {}).get(row, 1.0)
            ns = 1000 if self.placement == "host" else round(1000 * math.exp(next(draws[row])))
            return Record(spec.mechanism, self.placement, spec.size, ns, 2 * ns, 10**6, 1, iterations=10, batch=1)

        def close(self):  # noqa: ANN201
            return [], []

    monkeypatch.setattr(bench, "HostPairs", lambda *a, **k: Fake("host"))
    monkeypatch.setattr(bench, "ContainerPairs", lambda *a, **k: Fake("container"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    report = bench.run_bench(object(), "img", tmp_path / "shmlab", cfg, progress=lambda _m: None, run_id="r" * 36)
    assert "interval (rounds)" in render_table(report)
    return to_json(report), asked


ROWS = {("sysv-shm-spin", 64): TIGHT, ("sysv-shm-spin", 4096): TIGHT[1:] + TIGHT[:1],
        ("fifo", 64): CONVERGING, ("fifo", 4096): WILD}


def cfg(**kw: object) -> Config:
    return Config(("sysv-shm-spin", "fifo"), (64, 4096), ("host", "container"), 100, False, 5.0, memcpy=False,
                  **kw)  # type: ignore[arg-type]


def test_run_bench_adds_rounds_only_for_undecided_rows(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    doc, asked = fake_run(monkeypatch, tmp_path, ROWS, cfg(rounds=5))
    got = {(p["mechanism"], p["size"]): (p["rounds"], p["verdict"]) for p in doc["paired"]}
    assert got == {("sysv-shm-spin", 64): (5, "stable"), ("sysv-shm-spin", 4096): (5, "stable"),
                   ("fifo", 64): (8, "stable"), ("fifo", 4096): (5, "noisy")}
    assert sorted(asked[40:]) == sorted([("fifo", 64, "host"), ("fifo", 64, "container")] * 3)  # only the open row
    ad = doc["adaptive"]
    assert (ad["min_rounds"], ad["max_rounds"], ad["rounds_run"], ad["ended"]) == (5, 20, 8, "decided")
    # the default time for extra rounds is as long as the minimum rounds took (40 pairs of 1 s)
    assert (ad["min_rounds_s"], ad["extra_time_s"], ad["extra_time_used_s"]) == (40.0, 40.0, 6.0)
    assert doc["config"]["max_rounds"] == 20 and doc["config"]["rounds"] == 5
    wild = next(p for p in doc["paired"] if (p["mechanism"], p["size"]) == ("fifo", 4096))
    assert "would not bring it within +-5 %" in wild["why"] and wild["interval_pct"] > 5


def test_run_bench_max_rounds_bound(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    doc, asked = fake_run(monkeypatch, tmp_path, ROWS, cfg(rounds=5, max_rounds=7))
    conv = next(p for p in doc["paired"] if (p["mechanism"], p["size"]) == ("fifo", 64))
    # at most 7 rounds could not be enough for sigma ~5.9 % (needs ~10): given up at 5
    assert conv["rounds"] == 5 and conv["verdict"] == "noisy" and "even 7 rounds" in conv["why"]
    assert len(asked) == 40 and doc["adaptive"]["ended"] == "decided"
    doc, asked = fake_run(monkeypatch, tmp_path, ROWS, cfg(rounds=5, max_rounds=5))
    conv = next(p for p in doc["paired"] if (p["mechanism"], p["size"]) == ("fifo", 64))
    assert "--max-rounds 5 reached" in conv["why"] and doc["adaptive"]["ended"] == "max rounds"


def test_run_bench_time_bound(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    slow = {("fifo", 64): 10.0}  # 20 s a round; 3+ more rounds do not fit in 30 s
    doc, asked = fake_run(monkeypatch, tmp_path, ROWS, cfg(rounds=5, extra_time_s=30.0), seconds=slow)
    conv = next(p for p in doc["paired"] if (p["mechanism"], p["size"]) == ("fifo", 64))
    assert conv["rounds"] == 5 and conv["verdict"] == "noisy" and "time for extra rounds ran out" in conv["why"]
    assert len(asked) == 40 and doc["adaptive"]["ended"] == "time"
    doc, asked = fake_run(monkeypatch, tmp_path, ROWS, cfg(rounds=5, extra_time_s=0.0))
    assert len(asked) == 40 and doc["adaptive"]["ended"] == "time"
