"""The engine-driven benchmark: shapes, scraped counts, the engine loop, the rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report
from benchmarks.rollouts import (
    CallTimer,
    Record,
    drive,
    engine_judge,
    long_policy,
    old_advance_rule,
)
from benchmarks.rows import AA, ALLOWED, ERRORS_2, P95_30, SHAPES, RowStats, rows
from benchmarks.scenarios import schedule
from benchmarks.scrape import Cells, DirectTraffic, ScrapedTraffic
from benchmarks.simulate import (
    BIMODAL,
    COARSE_LES,
    EPOCH,
    HEAVY,
    KIT_LES,
    LOGNORMAL,
    LOGNORMAL_60,
    Scenario,
)
from rollout.instrument.metrics import LATENCY_BUCKETS
from rollout.routers.base import Weights
from rollout.spec import load_policy
from rollout.state import Phase

POLICY = load_policy("default")


def by_name(name: str) -> Scenario:
    return next(s for s in SHAPES if s.name == name)


# ---------------------------------------------------------------------------- shapes


def test_baselines_are_what_their_names_say() -> None:
    assert LOGNORMAL_60.quantile(0.5) == pytest.approx(0.060, rel=1e-6)
    assert LOGNORMAL_60.quantile(0.95) == pytest.approx(0.100, rel=1e-6)
    # a cache: 80% fast around 20 ms, 20% slow around 300 ms
    assert BIMODAL.quantile(0.5) < 0.03
    assert float(BIMODAL.cdf(np.array([0.1]))[0]) == pytest.approx(0.8, abs=1e-3)
    assert BIMODAL.quantile(0.9) == pytest.approx(0.300, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "ratio"),
    [
        ("heavy tail x1.2", 1.2),
        ("bimodal x1.2", 1.2),
        ("lognormal 60 ms, P95 +20% (tail above P90 stretched)", 1.2),
        ("bimodal, P95 +15% (tail above P90 stretched)", 1.15),
        ("lognormal x1.2 (P95 +20%)", 1.2),
        ("lognormal x1.1 (P95 +10%)", 1.1),
        ("P95 +30% (lognormal x1.3)", 1.3),
        ("P95 x2 (lognormal, P95 90 ms, x2)", 2.0),
    ],
)
def test_candidate_p95_ratios_are_what_the_names_say(name: str, ratio: float) -> None:
    s = by_name(name)
    assert s.candidate.quantile(0.95) / s.baseline.quantile(0.95) == pytest.approx(ratio, rel=1e-6)


def test_tail_stretched_candidates_keep_the_body() -> None:
    for name in (
        "lognormal 60 ms, P95 +20% (tail above P90 stretched)",
        "bimodal, P95 +15% (tail above P90 stretched)",
    ):
        s = by_name(name)
        for q in (0.25, 0.5, 0.8, 0.9):
            assert s.candidate.quantile(q) == pytest.approx(s.baseline.quantile(q), rel=1e-6)


def test_every_allowed_candidate_is_within_the_policys_tolerance() -> None:
    limit = 1 + POLICY.latency.max_regression
    for s in ALLOWED:
        assert s.kind == "boundary"
        assert s.candidate.quantile(0.95) <= s.baseline.quantile(0.95) * limit * (1 + 1e-9)
        assert s.candidate_errors == s.baseline_errors
    for s in AA:
        assert s.candidate is s.baseline


def test_kit_layout_is_the_instrumentation_kits() -> None:
    assert KIT_LES[:-1] == tuple(sorted(LATENCY_BUCKETS))
    assert math.isinf(KIT_LES[-1]) and math.isinf(COARSE_LES[-1])
    assert 0.1 in COARSE_LES and 0.15 in COARSE_LES


# ---------------------------------------------------------------------------- scraped counts


HEAVY_AA = Scenario("aa", "aa", 200.0, HEAVY, HEAVY.scaled(1.2), candidate_errors=0.02)


def _scraped(scrape: float, seed: int = 3, scenario: Scenario = HEAVY_AA) -> ScrapedTraffic:
    cells = Cells.of(scenario, KIT_LES)
    return ScrapedTraffic(scenario, cells, np.random.default_rng(seed), scrape)


def _looks(traffic: DirectTraffic, weights: list[int], start: float = EPOCH) -> list:
    """One 60 s look per weight, the weight changing at each look's start (as the engine does)."""
    result = []
    for i, w in enumerate(weights):
        traffic.set_weights(Weights.candidate_share(w))
        result.append(traffic.observe(start + 60 * i, start + 60 * (i + 1)))
    return result


@pytest.mark.parametrize("scrape", [15.0, 30.0, 60.0, 45.0])
def test_scraped_looks_partition_the_scraped_counts_exactly(scrape: float) -> None:
    traffic = _scraped(scrape, scenario=HEAVY_AA)
    looks = _looks(traffic, [5, 5, 5, 25, 25, 50, 50, 50])
    total = traffic.scraped_total(EPOCH, EPOCH + 60 * len(looks))
    # the counters hold every slab served: requests by status and the +Inf bucket agree
    for v in (0, 1):
        assert traffic.counters[v][0] + traffic.counters[v][1] == traffic.served[v]
        assert traffic.counters[v][-1] == traffic.served[v]
    for v, version in enumerate(("baseline", "candidate")):
        counts = [getattr(o, version) for o in looks]
        assert sum(c.requests for c in counts) == total[v][0] + total[v][1]
        assert sum(c.errors for c in counts) == total[v][1]
        for b in range(len(KIT_LES)):
            assert sum(c.buckets[b].count for c in counts) == total[v][2 + b]
        for c in counts:
            assert c.buckets[-1].count == c.requests  # +Inf counts every request
            bounds = [x.count for x in c.buckets]
            assert bounds == sorted(bounds)


def test_a_scraped_look_is_the_rise_between_the_scrapes_before_its_boundaries() -> None:
    traffic = _scraped(30.0, seed=5)
    looks = _looks(traffic, [5, 25, 50])
    times = np.array(traffic.times)
    for look in looks:
        i = int(np.searchsorted(times, look.start, side="right")) - 1
        j = int(np.searchsorted(times, look.end, side="right")) - 1
        rise = traffic.samples[j] - traffic.samples[i]
        assert look.candidate.errors == rise[1][1]
        assert look.baseline.requests == rise[0][0] + rise[0][1]


def test_scrapes_have_a_random_phase_and_a_small_jitter() -> None:
    phases = {round(_scraped(30.0, seed=s).times[0] % 30.0, 3) for s in range(5)}
    assert len(phases) == 5
    traffic = _scraped(30.0)
    _looks(traffic, [5] * 10)
    gaps = np.diff(traffic.times)
    assert gaps.min() >= 30.0 * 0.98 - 1e-3 and gaps.max() <= 30.0 * 1.02 + 1e-3


def test_scraped_counts_follow_rate_weight_and_error_rate() -> None:
    requests = errors = 0
    for seed in range(20):
        traffic = _scraped(15.0, seed=seed)
        looks = _looks(traffic, [25] * 10)
        requests += sum(o.candidate.requests for o in looks[1:])
        errors += sum(o.candidate.errors for o in looks[1:])
    expected = 20 * 9 * 200.0 * 0.25 * 60
    assert requests == pytest.approx(expected, rel=0.02)
    assert errors / requests == pytest.approx(0.02, abs=4 * math.sqrt(0.02 / requests))


def test_direct_looks_count_what_was_served() -> None:
    cells = Cells.of(HEAVY_AA, COARSE_LES)
    traffic = DirectTraffic(HEAVY_AA, cells, np.random.default_rng(1))
    looks = _looks(traffic, [5, 25, 50])
    assert sum(o.candidate.requests for o in looks) == traffic.served[1]
    assert tuple(b.le for b in looks[0].baseline.buckets) == COARSE_LES


def test_bad_requests_count_errors_and_slow_requests_of_the_candidate() -> None:
    slow = Scenario("x", "latency", 200.0, LOGNORMAL, LOGNORMAL.scaled(2.0), candidate_errors=0.0)
    traffic = DirectTraffic(slow, Cells.of(slow, KIT_LES), np.random.default_rng(2))
    _looks(traffic, [50] * 5)
    truth = 1 - float(slow.candidate.cdf(np.array([0.1]))[0])
    assert traffic.bad / traffic.served[1] == pytest.approx(truth, abs=0.01)


# ---------------------------------------------------------------------------- the engine loop


def _drive(scenario: Scenario, scrape: float = 30.0, seed: int = 0) -> Record:
    cells = Cells.of(scenario, KIT_LES)
    return drive(ScrapedTraffic(scenario, cells, np.random.default_rng(seed), scrape), POLICY)


def test_an_engine_driven_rollout_is_decided() -> None:
    record = _drive(AA[0])
    assert record.phase in (Phase.PROMOTED, Phase.PAUSED, Phase.ROLLED_BACK)
    assert math.isfinite(record.decided)
    assert record.weights[0] == (0.0, 5)  # the first step's weights, confirmed at the start
    if record.phase == Phase.PROMOTED:
        assert record.weights[-1][1] == 100
        assert record.promoted == record.decided >= sum(s.hold for s in POLICY.steps)
        assert [w for _, w in record.weights] == [5, 25, 50, 100]
    assert record.looks >= 1 and record.judge_seconds > 0


def test_a_clear_regression_is_rolled_back_with_its_bad_requests_counted() -> None:
    broken = Scenario("e", "errors", 200.0, LOGNORMAL, LOGNORMAL, candidate_errors=0.10)
    record = _drive(broken)
    assert record.phase == Phase.ROLLED_BACK
    assert record.promoted == math.inf
    assert record.decided <= 5 * 60
    assert record.weights[-1][1] == 0  # all traffic back on the baseline
    assert 0 < record.bad < 200 * 0.05 * record.decided


def test_old_advance_rule_is_restored() -> None:
    original = engine_judge()
    with old_advance_rule():
        assert engine_judge() is not original
        record = _drive(ERRORS_2, seed=1)
    assert engine_judge() is original
    assert record.phase in (Phase.PROMOTED, Phase.PAUSED, Phase.ROLLED_BACK)


def test_the_long_policy_reaches_look_120_and_times_its_calls() -> None:
    long = long_policy(POLICY)
    assert sum(s.hold for s in long.steps) == 120 * long.analysis.interval
    timer = CallTimer(long, (5, 7), repeats=2)
    cells = Cells.of(AA[0], KIT_LES)
    traffic = ScrapedTraffic(AA[0], cells, np.random.default_rng(0), 30.0)
    record = drive(traffic, long_policy(POLICY, looks_per_step=3), probe=timer)
    assert record.looks >= 9
    assert len(timer.seconds[5]) == 2 and len(timer.seconds[7]) == 2


# ---------------------------------------------------------------------------- rows


def test_rows_cover_every_shape_scrape_and_layout_asked() -> None:
    table = rows()
    names = [r.name for r in table]
    assert len(names) == len(set(names))
    for s in ALLOWED:
        assert {r.scrape for r in table if r.scenario is s and r.layout == "kit"} == {15, 30, 60}
        assert any(r.scenario is s and r.layout == "coarse" for r in table)
    for s in AA:
        assert {r.scrape for r in table if r.scenario is s and r.rule == "ready"} == {15, 30, 60}
    assert any(r.scenario is P95_30 and r.layout == "kit" for r in table)
    assert {r.scenario.name for r in table if r.rule == "old"} == {
        "A/A lognormal",
        "P95 +30% (lognormal x1.3)",
        "errors 1% -> 1.5%",
    }


def test_row_stats() -> None:
    def record(phase: str, minutes: float, bad: int) -> Record:
        promoted = minutes * 60 if phase == "Promoted" else math.inf
        return Record(phase, minutes * 60, promoted, bad, int(minutes), (), 0.001)

    records = [record("RolledBack", 3, 10), record("Promoted", 25, 100)]
    stats = RowStats.of([*records, record("Promoted", 27, 90), record("Paused", 35, 50)])
    assert (stats.rollback, stats.promote, stats.pause) == (0.25, 0.5, 0.25)
    assert stats.decision_median == 25
    assert stats.promotion_median == 27  # half of the rollouts promoted by 27 min
    assert stats.rollback_median == math.inf  # fewer than half rolled back
    assert stats.bad_median == 70
    assert stats.judge_calls == 90


# ---------------------------------------------------------------------------- report


def _stats(rollback: float, minutes: float = 5.0) -> RowStats:
    return RowStats(
        1000, rollback, 1 - rollback, 0.0, 0.0, 25, 27, minutes, minutes, 25, 100.0, 25, 25, 0.1
    )


def test_targets_say_met_and_not_met_honestly() -> None:
    table = rows()
    stats = {r.name: _stats(0.0) for r in table}
    for r in table:
        if r.kind in ("latency", "errors"):
            stats[r.name] = _stats(1.0, minutes=4.0)
    worst = next(r for r in table if r.kind == "boundary" and r.scrape == 60)
    stats[worst.name] = _stats(0.012)
    acceptance = report.Acceptance(table, stats, oracle_p95_30=2.0)
    speed = report.Speed(POLICY, 2, 2, 3, look_5=0.002, look_120=0.0029)
    lines = report.acceptance_targets(acceptance, speed)
    allowed = next(line for line in lines if line.startswith("- every allowed candidate"))
    assert "**NOT MET**" in allowed and worst.name in allowed
    assert all("**met**" in line for line in lines if "A/A false rollbacks" in line)
    assert any("P95 x2" in line and "**met**" in line for line in lines)
    assert any("look 120" in line and "**met**" in line for line in lines)
    text = report.render(
        report.Run("cmd", "machine", "judge", 1.0, 1000, 4, POLICY, schedule(POLICY)),
        acceptance,
        speed,
        None,
    )
    assert "## Engine-driven rollouts (issue 8)" in text and "old advance rule" in text


def test_write_keeps_the_discussion(tmp_path: Path) -> None:
    path = tmp_path / "judge_quality.md"
    path.write_text("# old\n\nold table\n\n## Discussion\n\nhand-written\n", encoding="utf-8")
    report.write(path, "# new\n")
    assert path.read_text(encoding="utf-8") == "# new\n\n## Discussion\n\nhand-written\n"
