"""The anytime-valid tests on plain counts: the arguments of sequential.py, checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.special import expit, logit, ndtr

from rollout.analysis import sequential as seq
from rollout.spec import Policy

POLICY = Policy.model_validate({"steps": [{"weight": 10, "hold": "5m"}]})


def test_bernoulli_e_value_is_the_mixture_of_likelihood_ratios() -> None:
    assert seq.bernoulli_log_e(0, 0, 0.05) == pytest.approx(0.0)
    alt = expit(logit(0.05) + seq.LOG_ODDS_STEPS)
    by_hand = np.mean((alt / 0.05) ** 3 * ((1 - alt) / 0.95) ** 7)
    assert math.exp(seq.bernoulli_log_e(3, 10, 0.05)) == pytest.approx(by_hand)


def _errors_log_e(
    looks: list[tuple[float, float, float, float]], max_increase: float = 0.0
) -> float:
    policy = Policy.model_validate(
        {"steps": [{"weight": 10, "hold": "5m"}], "errors": {"maxIncrease": max_increase}}
    )
    rhos = seq.rho_grid(policy)
    up = down = None
    for e_c, e_b, n_c, n_b in looks:
        up, down = seq.rate_ratio_llr(up, down, e_c, e_b, n_c, n_b, rhos)
    assert up is not None
    return seq.mixture_log_e(up[seq.rho_index(policy)])


def test_error_test_ignores_looks_without_errors() -> None:
    assert _errors_log_e([(0, 0, 10, 90), (0, 0, 50, 450)]) == 0.0
    assert _errors_log_e([(0, 0, 10, 90), (3, 0, 100, 900)]) > 0.0


def test_error_test_tolerates_the_allowed_increase() -> None:
    doubled = [(4.0, 18.0, 100.0, 900.0)] * 20  # candidate rate 4% vs 2%
    assert _errors_log_e(doubled) > math.log(200)
    assert _errors_log_e(doubled, max_increase=1.0) < 0.0


def test_error_interval_agrees_with_the_test() -> None:
    """The confidence sequence's lower end passes the null ratio exactly when the test rejects."""
    rhos = seq.rho_grid(POLICY)
    rng = np.random.default_rng(5)
    for rate_c in (0.01, 0.012, 0.02, 0.05):
        up = down = None
        for _ in range(20):
            n_c, n_b = 500, 9500
            up, down = seq.rate_ratio_llr(
                up, down, rng.binomial(n_c, rate_c), rng.binomial(n_b, 0.01), n_c, n_b, rhos
            )
            assert up is not None and down is not None
            low, high = seq.ratio_interval(up, down, rhos, math.log(200))
            rejects = seq.mixture_log_e(up[seq.rho_index(POLICY)]) >= math.log(200)
            assert (low >= 1.0) == rejects
            assert low < high


# ---------------------------------------------------------------------------- latency shapes


def _lognormal(median: float, sigma: float, scale: float = 1.0):  # type: ignore[no-untyped-def]
    return lambda x: ndtr((np.log(np.maximum(x, 1e-12) / scale) - math.log(median)) / sigma)


def _bimodal(scale: float = 1.0):  # type: ignore[no-untyped-def]
    fast, slow = _lognormal(0.02, 0.3, scale), _lognormal(0.3, 0.25, scale)
    return lambda x: 0.8 * fast(x) + 0.2 * slow(x)


def _pareto_tail(scale: float = 1.0):  # type: ignore[no-untyped-def]
    body = _lognormal(0.05, 0.35, scale)

    def cdf(x):  # type: ignore[no-untyped-def]
        xm = 0.08 * scale
        return 0.96 * body(x) + 0.04 * np.where(x >= xm, 1 - (xm / np.maximum(x, xm)) ** 1.6, 0)

    return cdf


def _quantile(cdf, q: float) -> float:  # type: ignore[no-untyped-def]
    return float(brentq(lambda x: float(cdf(np.array([x]))[0]) - q, 1e-6, 1e3))


def _stretched(cdf, pivot_q: float, ratio: float):  # type: ignore[no-untyped-def]
    pivot, p95 = _quantile(cdf, pivot_q), _quantile(cdf, 0.95)
    k = (ratio * p95 - pivot) / (p95 - pivot)
    return lambda x: np.where(x <= pivot, cdf(x), cdf(pivot + (x - pivot) / k))


SHAPES = {
    "lognormal x1.2": (_lognormal(0.05, 0.42), _lognormal(0.05, 0.42, 1.2)),
    "heavy tail x1.2": (_pareto_tail(), _pareto_tail(1.2)),
    "bimodal x1.2": (_bimodal(), _bimodal(1.2)),
    "lognormal 60 ms, tail above P90 stretched, P95 +20%": (
        _lognormal(0.06, 0.42),
        _stretched(_lognormal(0.06, 0.42), 0.9, 1.2),
    ),
    "bimodal, tail above P90 stretched, P95 +15%": (_bimodal(), _stretched(_bimodal(), 0.9, 1.15)),
}
LADDER = tuple(0.15 * 1.2 ** (k / 8) for k in range(-48, 16))
COARSE = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(sorted(SHAPES)),
    layout=st.sampled_from(["ladder", "coarse", "random"]),
    seed=st.integers(0, 10_000),
)
def test_null_inequality_holds_for_every_allowed_shape(shape: str, layout: str, seed: int) -> None:
    """Step 2's inequality, on the true distributions: for the bucket holding the baseline's
    P95, the candidate's tail above its matched bound is at most the baseline's above the
    bucket's lower bound, for any candidate whose P95 is within +20%."""
    base, cand = SHAPES[shape]
    if layout == "random":
        rng = np.random.default_rng(seed)
        bounds = tuple(np.sort(rng.uniform(0.005, 2.0, size=int(rng.integers(5, 60)))))
    else:
        bounds = LADDER if layout == "ladder" else COARSE
    les = np.array((*bounds, math.inf))
    q_b = _quantile(base, 0.95)
    assert _quantile(cand, 0.95) <= 1.2 * q_b * (1 + 1e-6)
    pairs = seq.bucket_pairs(0.2, les)
    finite = les[:-1]
    for k in range(pairs.size):
        if not finite[k] < q_b <= finite[k + 1] or pairs[k] < 0:
            continue
        s_c = 1 - float(cand(np.array([les[pairs[k]]]))[0])
        s_b = 1 - float(base(np.array([finite[k]]))[0])
        assert s_c <= s_b + 1e-9


def _draw(cdf, les: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:  # type: ignore[no-untyped-def]
    probs = np.diff(np.concatenate(([0.0], cdf(les[:-1]), [1.0])))
    return np.cumsum(rng.multinomial(n, probs)).astype(float)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_window_holds_the_baseline_quantile(shape: str) -> None:
    base, _ = SHAPES[shape]
    les = np.array((*LADDER, math.inf))
    q_b = _quantile(base, 0.95)
    rng = np.random.default_rng(11)
    total = np.zeros(les.size)
    for _ in range(20):
        total += _draw(base, les, 3000, rng)
        window = seq.quantile_window(0.95, 0.2, les, total, 0.0005)
        assert math.isnan(window.lower) or window.lower < q_b
        assert math.isnan(window.upper) or q_b <= window.upper
    if q_b < LADDER[-1] / 1.3:  # where the ladder is dense: a few 2.3% buckets, plus the 20%
        assert window.resolution < 0.35


def _rollback_rate(base, cand, rollouts: int, seed: int) -> float:  # type: ignore[no-untyped-def]
    les = np.array((*LADDER, math.inf))
    pairs = seq.bucket_pairs(0.2, les)
    rng = np.random.default_rng(seed)
    threshold = math.log(2 / 0.005)
    failed = 0
    for _ in range(rollouts):
        llr, total = np.zeros((pairs.size, seq.RATE_RATIO_STEPS.size)), np.zeros(les.size)
        for look in range(25):
            n_c = 600 if look < 5 else 3000 if look < 15 else 6000
            b, c = _draw(base, les, 12_000 - n_c, rng), _draw(cand, les, n_c, rng)
            llr += seq.matched_tail_llr(pairs, b, c)
            total += b
            window = seq.quantile_window(0.95, 0.2, les, total, 0.005 / 8)
            if seq.window_log_e(llr, window, les) >= threshold:
                failed += 1
                break
    return failed / rollouts


@pytest.mark.slow
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_allowed_candidates_of_every_shape_are_rarely_rolled_back(shape: str) -> None:
    """A Monte Carlo check of the whole argument: 60 rollouts of 25 looks at 200 req/s per
    allowed shape; alpha is 0.005, so more than 3 rollbacks would be far beyond it."""
    base, cand = SHAPES[shape]
    assert _rollback_rate(base, cand, 60, seed=hash(shape) % 1000) <= 3 / 60


def test_latency_test_detects_p95_plus_thirty_percent() -> None:
    base = _lognormal(0.05, 0.42)
    assert _rollback_rate(base, _lognormal(0.05, 0.42, 1.3), 20, seed=3) == 1.0


def test_matched_tails_never_fail_an_identical_candidate_under_drift() -> None:
    """Both versions slow down together (x1 -> x2 over the looks): the window lags, yet a
    candidate identical to the baseline in each look never gets evidence against it."""
    les = np.array((*LADDER, math.inf))
    pairs = seq.bucket_pairs(0.2, les)
    rng = np.random.default_rng(2)
    llr, total = np.zeros((pairs.size, seq.RATE_RATIO_STEPS.size)), np.zeros(les.size)
    for look in range(30):
        shape = _lognormal(0.05, 0.42, 1.0 + look / 30)
        b, c = _draw(shape, les, 10_000, rng), _draw(shape, les, 10_000, rng)
        llr += seq.matched_tail_llr(pairs, b, c)
        total += b
        window = seq.quantile_window(0.95, 0.2, les, total, 0.005 / 8)
        assert seq.window_log_e(llr, window, les) < math.log(400)


def test_slo_guard_counts_above_the_next_bound_only() -> None:
    les = np.array((0.1, 0.2, math.inf))
    cumulative = np.array([50.0, 90.0, 100.0])
    assert seq.exceeding(0.15, les, cumulative) == 10.0  # above 0.2, never above 0.15
    assert seq.exceeding(0.1, les, cumulative) == 50.0
    assert seq.exceeding(0.5, les, cumulative) == 0.0
