"""The anytime-valid tests: exact numbers, and validity and power by simulation.

Validity: with alpha = 0.05 (measurable in a few hundred runs), the share of A/A
rollouts that ever reject over 30 looks stays under alpha plus three standard
errors of the simulation (0.05 + 3 sqrt(0.05 * 0.95 / 300) ~ 0.088).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from judge_sim import LES_ARRAY, bucket_probabilities

from rollout.analysis import sequential as seq

ALPHA = 0.05
RUNS = 300
LOOKS = 30
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)


def test_bernoulli_e_value_is_the_mixture_of_likelihood_ratios() -> None:
    assert seq.bernoulli_log_e(0, 0, 0.05) == pytest.approx(0.0)
    alt = 1 / (1 + np.exp(-(math.log(0.05 / 0.95) + seq.LOG_ODDS_STEPS)))
    by_hand = np.mean((alt / 0.05) ** 3 * ((1 - alt) / 0.95) ** 7)
    assert math.exp(seq.bernoulli_log_e(3, 10, 0.05)) == pytest.approx(by_hand)
    values = seq.bernoulli_log_e(np.arange(11), np.full(11, 10), 0.05)
    assert np.all(np.diff(values) > 0)  # more successes, more evidence


def test_error_test_ignores_intervals_without_errors() -> None:
    log_e = seq.error_rate_log_e([0, 0, 3], [0, 0, 0], [10, 50, 100], [90, 450, 900])
    assert log_e[:2].tolist() == [0.0, 0.0]
    assert log_e[2] > 0  # all 3 errors on the candidate at a 10% share


def test_error_test_tolerates_the_allowed_increase() -> None:
    counts = ([20], [100], [1000], [9000])  # candidate rate 2% vs 1.1%: x1.8
    strict = seq.error_rate_log_e(*counts)[-1]
    tolerant = seq.error_rate_log_e(*counts, max_increase=1.0)[-1]
    assert tolerant < strict
    assert tolerant < 0  # within x2: evidence for the null


def _errors_reject(rng: np.random.Generator, rps: float, cand_rate: float) -> bool:
    totals = rng.poisson(rps * 30, LOOKS)
    shares = np.repeat([0.1, 0.25, 0.5], LOOKS // 3)
    n_c = rng.binomial(totals, shares)
    n_b = totals - n_c
    e_c, e_b = rng.binomial(n_c, cand_rate), rng.binomial(n_b, 0.01)
    log_e = seq.error_rate_log_e(e_c, e_b, n_c, n_b)
    return bool(np.max(log_e) >= math.log(1 / ALPHA))


@pytest.mark.parametrize("rps", [1.0, 20.0])
def test_error_test_a_a_false_rollbacks_stay_under_alpha(rps: float) -> None:
    rng = np.random.default_rng(11)
    rejected = np.mean([_errors_reject(rng, rps, 0.01) for _ in range(RUNS)])
    assert rejected <= ALPHA + SLACK


def test_error_test_detects_one_to_five_percent() -> None:
    rng = np.random.default_rng(12)
    detected = np.mean([_errors_reject(rng, 20.0, 0.05) for _ in range(100)])
    assert detected >= 0.95


def _latency_reject(rng: np.random.Generator, rps: float, scale: float) -> bool:
    base_p, cand_p = bucket_probabilities(), bucket_probabilities(scale)
    totals = rng.poisson(rps * 30, LOOKS)
    n_c = rng.binomial(totals, 0.2)
    base = np.cumsum([rng.multinomial(n, base_p) for n in totals - n_c], axis=1)
    cand = np.cumsum([rng.multinomial(n, cand_p) for n in n_c], axis=1)
    log_e, _, _ = seq.latency_log_e(0.95, 0.2, LES_ARRAY, base, cand)
    return bool(np.max(log_e) >= math.log(1 / ALPHA))


@pytest.mark.parametrize(("rps", "scale"), [(5.0, 1.0), (50.0, 1.0), (50.0, 1.2)])
def test_latency_test_false_rollbacks_stay_under_alpha(rps: float, scale: float) -> None:
    """A/A, and the null's boundary: candidate P95 exactly the allowed +20%."""
    rng = np.random.default_rng(21)
    rejected = np.mean([_latency_reject(rng, rps, scale) for _ in range(RUNS)])
    assert rejected <= ALPHA + SLACK


def test_latency_test_detects_p95_plus_fifty_percent() -> None:
    rng = np.random.default_rng(22)
    detected = np.mean([_latency_reject(rng, 50.0, 1.5) for _ in range(100)])
    assert detected >= 0.95


def test_sign_test_needs_a_run_of_worse_intervals() -> None:
    worse = np.ones(12, dtype=bool)
    log_e = seq.sign_test_log_e(worse, np.ones(12, dtype=bool))
    crossed = np.nonzero(log_e >= math.log(20))[0]
    assert crossed.size and 4 <= crossed[0] <= 9
    skipped = seq.sign_test_log_e(worse, np.zeros(12, dtype=bool))
    assert np.all(skipped == 0.0)
