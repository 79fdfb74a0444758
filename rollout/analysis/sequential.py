"""Anytime-valid tests as pure functions on arrays of per-interval counts.

Each function returns the log e-value after every look (index t: looks 0..t).
An e-process E_t is a non-negative process with E[E_tau] <= 1 at any stopping
time under the null, so by Ville's inequality P(sup_t E_t >= 1/a) <= a: the
false-rejection rate stays at a however often one looks. All tests here are
mixtures over a fixed grid of alternatives of likelihood ratios that are test
supermartingales for a one-sided composite null (a monotone likelihood-ratio
family evaluated under any parameter on the null side has expectation <= 1),
and a fixed mixture of test supermartingales is one too.

The benchmark may call these directly; `judge()` is built on them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, logit

from rollout.analysis.stats import count_above, rank_values

FloatArray = NDArray[np.float64]

# Alternatives of the Bernoulli mixture, in log-odds above the null: from barely
# above (fine resolution once much data has accrued) to large jumps (few data).
LOG_ODDS_STEPS = np.geomspace(0.02, 4.0, 16)
# Alternatives of the error-rate test: rate ratio over the null ratio rho0.
RATE_RATIO_STEPS = np.geomspace(1.1, 30.0, 14)


def _log_mean_exp(log_terms: FloatArray) -> FloatArray:
    """log of the mean over the last axis of exp(log_terms), without overflow."""
    top = np.max(log_terms, axis=-1, keepdims=True)
    out: FloatArray = np.log(np.mean(np.exp(log_terms - top), axis=-1)) + top[..., 0]
    return out


def _bernoulli_slopes(p0: float) -> tuple[FloatArray, FloatArray]:
    """Per alternative: log-LR of one failure, and the extra log-LR of a success."""
    alt = expit(logit(p0) + LOG_ODDS_STEPS)
    per_failure: FloatArray = np.log((1.0 - alt) / (1.0 - p0))
    return per_failure, LOG_ODDS_STEPS  # log(alt/p0) - per_failure = logit(alt) - logit(p0)


def bernoulli_log_e(successes: ArrayLike, trials: ArrayLike, p0: float) -> FloatArray:
    """log e-value of H0: p <= p0 from cumulative counts (any shape, fractional ok).

    Fractional successes come from interpolated tail counts: each request
    contributes a value in [0, 1] with mean <= p0 under H0, and because the
    likelihood ratio is convex in that value its expectation is still <= 1.
    """
    k = np.asarray(successes, dtype=np.float64)[..., None]
    n = np.asarray(trials, dtype=np.float64)[..., None]
    per_failure, per_success = _bernoulli_slopes(p0)
    return _log_mean_exp(n * per_failure + k * per_success)


def error_rate_log_e(
    candidate_errors: ArrayLike,
    baseline_errors: ArrayLike,
    candidate_requests: ArrayLike,
    baseline_requests: ArrayLike,
    max_increase: float = 0.0,
) -> FloatArray:
    """log e-value after each interval of H0: candidate error rate <= (1 + max_increase)
    x baseline's, from per-interval (not cumulative) counts.

    Conditional on an interval's total errors E_t, the candidate's errors are
    Binomial(E_t, p(rho)) with p(rho) = rho s / (rho s + 1 - s), s the candidate's
    share of the interval's requests (exact for Poisson errors; for binomial
    errors at rho = 1 the conditional law is hypergeometric, which is dominated in
    convex order by that binomial, so the test stays conservative). p is
    increasing in rho, so each rho > rho0 gives a test supermartingale for
    rho <= rho0; intervals without errors contribute a factor 1.
    """
    x = np.asarray(candidate_errors, dtype=np.float64)
    e_total = x + np.asarray(baseline_errors, dtype=np.float64)
    n_c = np.asarray(candidate_requests, dtype=np.float64)
    n_b = np.asarray(baseline_requests, dtype=np.float64)
    n = n_c + n_b
    share = np.divide(n_c, n, out=np.zeros_like(n_c), where=n > 0)
    informative = (share > 0) & (share < 1) & (e_total > 0)
    s = np.where(informative, share, 0.5)[None, :]
    rho0 = 1.0 + max_increase
    rho = (rho0 * RATE_RATIO_STEPS)[:, None]
    p_alt = rho * s / (rho * s + 1.0 - s)
    p_null = rho0 * s / (rho0 * s + 1.0 - s)
    log_lr = x * np.log(p_alt / p_null) + (e_total - x) * np.log((1 - p_alt) / (1 - p_null))
    log_lr = np.where(informative[None, :], log_lr, 0.0)
    return _log_mean_exp(np.cumsum(log_lr, axis=1).T)


def latency_log_e(
    q: float,
    max_regression: float,
    les: FloatArray,
    baseline_counts: FloatArray,
    candidate_counts: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Test of H0: candidate q-quantile <= (1 + max_regression) x baseline's.

    Inputs are per-interval histograms (T, B) on common bounds `les`. Returns
    (log e-value, candidate threshold tau, baseline threshold) after each look;
    reject when the log e-value reaches log(1 / alpha).

    A matched-tail comparison: before look t, the baseline's q-quantile estimate
    x_t from looks < t (predictable) sets two thresholds, x_t for the baseline and
    tau_t = (1 + r) x_t for the candidate. In look t each version's requests above
    its threshold are its "slow" requests. Under H0 a candidate request is above
    tau_t no more often than a baseline request is above x_t (exactly so when the
    candidate is the baseline scaled by at most 1 + r, and to first order around
    the quantile otherwise), so conditional on the look's slow total the
    candidate's share is the binomial question of `error_rate_log_e`. Comparing
    both versions in the same look accounts for the baseline's own sampling noise
    and cancels drift that moves both versions (diurnal load): no baseline bound,
    no pooling over time.
    """
    base_cum = np.cumsum(baseline_counts, axis=0)
    prior = np.vstack((np.zeros((1, base_cum.shape[1])), base_cum[:-1]))
    ranks = q * prior[:, -1]
    baseline_threshold = np.where(prior[:, -1] > 0, rank_values(ranks, les, prior), np.inf)
    tau = (1.0 + max_regression) * baseline_threshold
    usable = np.isfinite(baseline_threshold)
    slow_b = np.where(
        usable, count_above(np.where(usable, baseline_threshold, 0.0), les, baseline_counts), 0.0
    )
    slow_c = np.where(usable, count_above(np.where(usable, tau, 0.0), les, candidate_counts), 0.0)
    log_e = error_rate_log_e(
        slow_c,
        slow_b,
        np.where(usable, candidate_counts[:, -1], 0.0),
        np.where(usable, baseline_counts[:, -1], 0.0),
    )
    return log_e, tau, baseline_threshold


def tail_log_e(q: float, limit: float, les: FloatArray, candidate_counts: FloatArray) -> FloatArray:
    """SLO guard: H0 candidate q-quantile <= `limit` (per-interval histograms (T, B))."""
    cum = np.cumsum(candidate_counts, axis=0)
    exceed = count_above(np.full(cum.shape[0], limit), les, cum)
    return bernoulli_log_e(exceed, cum[:, -1], 1.0 - q)


def sign_test_log_e(worse: ArrayLike, valid: ArrayLike) -> FloatArray:
    """Sequential sign test over intervals: H0 P(candidate worse) <= 1/2.

    `worse` and `valid` per interval (booleans); invalid intervals are skipped.
    """
    w = np.asarray(worse, dtype=np.float64) * np.asarray(valid, dtype=np.float64)
    return bernoulli_log_e(np.cumsum(w), np.cumsum(np.asarray(valid, dtype=np.float64)), 0.5)
