"""The benchmark's simulator and peer rules: draws follow the scenario, rules fire as set."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.peers import NEVER, KayentaWindows, Summary, argo, flagger, kayenta, oracle
from benchmarks.scenarios import SCENARIOS, by_name, schedule
from benchmarks.simulate import (
    COARSE_LES,
    HEAVY,
    KIT_LES,
    LOGNORMAL,
    Draws,
    Schedule,
    histogram_quantile,
    observations,
    simulate,
)
from rollout.analysis import stats
from rollout.spec import load_policy

PLAN = Schedule(60.0, (5, 5, 25, 25, 50, 50), (1, 3, 5))


def draws(
    name: str, rollouts: int = 40, seed: int = 1, les: tuple[float, ...] = COARSE_LES
) -> Draws:
    return simulate(by_name(name), PLAN, rollouts, np.random.default_rng(seed), les=les)


def test_true_quantiles_follow_the_scenarios() -> None:
    assert LOGNORMAL.quantile(0.95) == pytest.approx(0.100, rel=1e-6)
    assert LOGNORMAL.scaled(1.3).quantile(0.95) / LOGNORMAL.quantile(0.95) == pytest.approx(1.3)
    tail = by_name("tail only (P50 same, P95 +35%)").candidate
    assert tail.quantile(0.5) == pytest.approx(HEAVY.quantile(0.5), rel=1e-6)
    assert tail.quantile(0.95) / HEAVY.quantile(0.95) == pytest.approx(1.35, rel=1e-6)


def test_requests_and_errors_follow_rate_weight_and_error_rate() -> None:
    d = draws("errors 1% -> 2%", rollouts=200)
    weights = np.array(PLAN.weights) / 100
    expected = 200.0 * 60.0 * weights
    assert d.requests[..., 1].mean(axis=0) == pytest.approx(expected, rel=0.03)
    rate = d.errors[..., 1].sum() / d.requests[..., 1].sum()
    assert rate == pytest.approx(0.02, abs=4 * math.sqrt(0.02 * 0.98 / d.requests[..., 1].sum()))


def test_simulated_tail_above_the_baseline_p95_matches_the_truth() -> None:
    scenario = by_name("P95 +30%")
    d = draws(scenario.name, rollouts=200)
    n = d.requests[..., 1].sum()
    # no error overlap to subtract: compare the requests above 1.2 x baseline P95 (oracle cell)
    observed = d.tail.sum() / n
    truth = float(d.oracle_tail[0, 1])
    assert truth == pytest.approx(1 - float(scenario.candidate.cdf(np.array([0.12]))[0]))
    assert observed == pytest.approx(truth, abs=4 * math.sqrt(truth * (1 - truth) / n))


def test_simulated_p95_ratio_matches_the_scenario() -> None:
    d = draws("P95 +50%", rollouts=100)
    pooled = d.buckets.sum(axis=(0, 1))  # (2, B) both versions over every rollout and look
    p95 = histogram_quantile(0.95, pooled, COARSE_LES)
    # the baseline's P95 sits on a bucket bound; the candidate's (150 ms) too
    assert p95[0] == pytest.approx(0.100, rel=0.01)
    assert p95[1] / p95[0] == pytest.approx(1.5, rel=0.02)


def test_histogram_quantile_matches_the_judges_own() -> None:
    rng = np.random.default_rng(3)
    for layout in (COARSE_LES, KIT_LES):
        les = np.array(layout)
        for _ in range(50):
            counts = np.cumsum(rng.integers(0, 20, size=len(layout)))
            ours = float(histogram_quantile(0.95, counts[None], layout)[0])
            expected = stats.histogram_quantile(0.95, les, counts.astype(float))
            assert ours == pytest.approx(expected)
        empty = np.zeros((1, len(layout)), int)
        assert math.isnan(float(histogram_quantile(0.95, empty, layout)[0]))


def test_drift_moves_both_versions() -> None:
    d = draws("A/A diurnal drift", rollouts=100)
    p95 = histogram_quantile(0.95, d.buckets.sum(axis=0), d.les)  # (T, 2)
    assert p95[-1, 0] > p95[0, 0] * 1.15
    assert p95[-1, 1] > p95[0, 1] * 1.15


def test_observations_carry_the_draws() -> None:
    d = draws("A/A 200 req/s", rollouts=2, les=KIT_LES)
    history = observations(d, 1, PLAN.interval)
    assert len(history) == PLAN.intervals
    look = history[2]
    assert look.candidate.requests == d.requests[1, 2, 1]
    assert look.baseline.errors == d.errors[1, 2, 0]
    assert look.candidate.buckets is not None
    assert look.candidate.buckets[-1].count == look.candidate.requests
    assert tuple(b.le for b in look.candidate.buckets) == KIT_LES
    assert look.end - look.start == PLAN.interval


def test_peer_rules_with_huge_thresholds_never_fire() -> None:
    s = Summary.of(draws("P95 +50%"), 0.95)
    huge = np.array([1e9])
    assert (flagger(s, huge, np.array([1.0]), 1) == NEVER).all()
    assert (argo(s, huge, huge, 0) == NEVER).all()
    windows = KayentaWindows.of(s, PLAN.step_ends)
    assert (kayenta(windows, np.array([np.inf]), np.array([np.inf])) == NEVER).all()


def test_peer_rules_with_zero_thresholds_fire_at_the_first_look() -> None:
    s = Summary.of(draws("P95 +50%"), 0.95)
    zero = np.array([0.0])
    assert (flagger(s, zero, zero, 1) == 0).all()
    assert (argo(s, zero, np.array([-1.0]), 0) == 0).all()


def test_flagger_counts_failed_checks_up_to_its_threshold() -> None:
    s = Summary.of(draws("P95 +50%"), 0.95)
    # every look fails the latency check: the n-th failed check is at look n - 1
    assert (flagger(s, np.array([0.0]), np.array([1.0]), 3) == 2).all()


def test_oracle_detects_a_clear_regression_and_not_an_aa() -> None:
    scenario = by_name("P95 +50%")
    d = draws(scenario.name)
    decided = oracle(scenario, d, 0.01, 0.01, 0.2)
    assert decided is not None
    assert (decided != NEVER).mean() > 0.95
    aa = by_name("A/A 200 req/s")
    quiet = oracle(aa, draws(aa.name, rollouts=100), 0.01, 0.01, 0.2)
    assert quiet is not None
    assert (quiet != NEVER).mean() <= 0.03
    assert oracle(by_name("P95 +20% (at tolerance)"), d, 0.01, 0.01, 0.2) is None


def test_the_default_policy_becomes_25_looks() -> None:
    plan = schedule(load_policy("default"))
    assert plan.intervals == 25
    assert plan.step_ends == (4, 14, 24)
    assert plan.weights[0] == 5 and plan.weights[-1] == 50
    assert {s.twin for s in SCENARIOS} <= {s.name for s in SCENARIOS}
