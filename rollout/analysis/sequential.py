"""Anytime-valid tests as pure functions on counts; the argument for each is written here.

An e-process E_t is non-negative with E[E_tau] <= 1 at any stopping time under the null, so
by Ville's inequality P(sup_t E_t >= 1/a) <= a: the false-rejection rate stays at `a` however
often one looks. Every test here is a fixed mixture, over a grid of alternatives, of likelihood
ratios that are test supermartingales for a one-sided null (a monotone likelihood-ratio family
evaluated anywhere on the null side has expectation <= 1); a fixed mixture of test
supermartingales is one too. The statistics are sums of per-look log likelihood ratios, so the
judge folds one look in at a time (`accumulate.py`) and never recomputes the past.

Errors (`rate_ratio_llr`). Conditional on a look's total errors E_t, the candidate's errors are
Binomial(E_t, p(rho)), p(rho) = rho s / (rho s + 1 - s), s the candidate's share of the look's
requests, rho the ratio of error rates (exact for Poisson errors; for binomial errors at the
null the conditional law is hypergeometric, dominated in convex order by that binomial, so
the test stays conservative). p increases with rho, so each alternative rho > rho0 gives a
test supermartingale for rho <= rho0; looks without errors contribute a factor 1. Kept for a
grid of rho0 (`rho_grid`), both directions, which inverts to a confidence sequence for rho
that agrees with the test: the test rejects exactly when the sequence's lower end passes the
null ratio 1 + maxIncrease.

Latency, shape-free (`quantile_window`, `matched_tail_llr`, `window_log_e`). Null: the
candidate's q-quantile Q_c <= (1 + r) Q_b, for any latency distributions. Only exact
cumulative bucket counts at the histogram's bounds are used, never a count inside a bucket.
With F the cumulative distribution function, Q = inf{x : F(x) >= q}, so for any bound l:
F(l) < q implies l < Q, and F(l) >= q implies l >= Q.

1. Window. From the baseline's counts so far, `lower` is the largest bound where a mixture
   e-process for "F_b(l) >= q" has reached 1/a_w (evidence that F_b(l) < q) and `upper` the
   smallest bound where one for "F_b(l) <= q" has (evidence that F_b(l) >= q). Let l* be the
   smallest bound with F_b(l*) >= q: a bound at or above it has no more requests above it than
   l*, and the e-process grows with that count, so it is named `lower` only if l*'s own
   e-process crossed; likewise for `upper` and the largest bound with F_b < q. So with
   probability >= 1 - 2 a_w, at every look at once, lower < Q_b <= upper. No union over the
   bounds is needed. (The baseline is taken to be one distribution over the rollout here.)
2. Matched tails, one e-process per bucket (`bucket_pairs`, `matched_tail_llr`). For each
   bucket (l_k, l_k+1], c_k is the smallest bound >= (1 + r) l_k+1. If Q_b is in that bucket
   and H0 holds: c_k >= (1 + r) Q_b >= Q_c, so S_c(c_k) = 1 - F_c(c_k) <= 1 - q < S_b(l_k). A
   candidate request lands above c_k less often than a baseline request lands above l_k, so
   conditional on a look's total of such "slow" requests the candidate's share is the
   binomial question of the error test with rho0 = 1, and the product over looks E_k is an
   e-process for the true bucket k* (fixed, whatever the window says).
3. The statistic (`window_log_e`) is the smallest E_k over the buckets the window leaves
   possible. When the window holds, k* is among them, so the statistic is at most E_k*: P(it
   ever reaches 1/a_e) <= 2 a_w + a_e.
4. The reported interval of the quantile ratio is built from both versions' windows: Q_c in
   (lower_c, upper_c], Q_b in (lower_b, upper_b], so the ratio is in
   (lower_c / upper_b, upper_c / lower_b) with probability >= 1 - 4 a_w at every look. When its
   lower end passes 1 + r, the regression is shown: the judge fails the candidate then too.
   With a_w = a / 8 and a_e = a / 2 the latency test's false-rollback rate is at most a.

Both versions are compared within the same look, so load that slows both (diurnal drift) moves
both tails alike: a candidate identical to the baseline in every look gets no evidence from step
2 whatever the window says (c_k > l_k). What the buckets cannot resolve stays unresolved: a
candidate whose quantile is at most c_k is never shown regressed, so the smallest regression the
test can show is c / lower - 1 for the window's widest pair (`Window.resolution`, said in every
report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, logit

from rollout.spec import Policy

FloatArray = NDArray[np.float64]

# Alternatives of the Bernoulli mixture, in log-odds above the null.
LOG_ODDS_STEPS = np.geomspace(0.02, 4.0, 16)
# Alternatives of the ratio tests: ratio over the null ratio rho0.
RATE_RATIO_STEPS = np.array([1.15, 1.3, 1.5, 2.0, 4.0, 10.0])
# Null ratios whose e-processes are kept: the error-rate ratio's confidence sequence.
_RHO_POINTS = np.geomspace(1.0 / 16.0, 16.0, 17)


def _log_mean_exp(log_terms: FloatArray) -> FloatArray:
    """log of the mean over the last axis of exp(log_terms), without overflow."""
    top = log_terms.max(axis=-1, keepdims=True)
    total = np.exp(log_terms - top).sum(axis=-1)
    out: FloatArray = np.log(total) - math.log(log_terms.shape[-1]) + top[..., 0]
    return out


def mixture_log_e(llr: ArrayLike) -> float:
    """log e-value of an equal-weight mixture, from each alternative's log likelihood ratio."""
    return float(_log_mean_exp(np.asarray(llr, dtype=np.float64)))


def bernoulli_log_e(successes: ArrayLike, trials: ArrayLike, p0: float) -> FloatArray:
    """log e-value of H0: p <= p0 from cumulative counts (any array shape)."""
    k = np.asarray(successes, dtype=np.float64)[..., None]
    n = np.asarray(trials, dtype=np.float64)[..., None]
    return _log_mean_exp(n * _per_failure(p0) + k * LOG_ODDS_STEPS)


@lru_cache(maxsize=64)
def _per_failure(p0: float) -> FloatArray:
    """Each alternative's log LR of one failure (the judge asks for a few p0s, many times)."""
    alt = expit(logit(p0) + LOG_ODDS_STEPS)
    out: FloatArray = np.log((1.0 - alt) / (1.0 - p0))
    out.flags.writeable = False
    return out


# ---------------------------------------------------------------------------- errors


def rho_grid(policy: Policy) -> FloatArray:
    """Null ratios kept for the error rate: the policy's null and a log-spaced grid."""
    return _rho_grid(1.0 + policy.errors.max_increase)


@lru_cache(maxsize=64)
def _rho_grid(null_ratio: float) -> FloatArray:
    grid = np.unique(np.append(_RHO_POINTS, null_ratio))
    grid.flags.writeable = False
    return grid


def rho_index(policy: Policy) -> int:
    return int(np.searchsorted(rho_grid(policy), 1.0 + policy.errors.max_increase))


def _share_llr(
    x: ArrayLike, total: ArrayLike, share: float, rho0: FloatArray, rho: FloatArray
) -> FloatArray:
    """log LR of `x` of `total` events being the candidate's, alternative rho vs null rho0."""
    p_alt = rho * share / (rho * share + 1.0 - share)
    p_null = rho0 * share / (rho0 * share + 1.0 - share)
    k, n = np.asarray(x, dtype=np.float64), np.asarray(total, dtype=np.float64)
    out: FloatArray = k * np.log(p_alt / p_null) + (n - k) * np.log((1 - p_alt) / (1 - p_null))
    return out


def rate_ratio_llr(
    up: FloatArray | None,
    down: FloatArray | None,
    candidate_events: float,
    baseline_events: float,
    candidate_n: float,
    baseline_n: float,
    rhos: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Add one look to the log-LRs of "ratio <= rho0" (up) and ">= rho0" (down), per rho0
    in `rhos` (rows) and alternative (columns)."""
    shape = (rhos.size, RATE_RATIO_STEPS.size)
    up = np.zeros(shape) if up is None else up
    down = np.zeros(shape) if down is None else down
    total = candidate_events + baseline_events
    n = candidate_n + baseline_n
    if total <= 0 or candidate_n <= 0 or baseline_n <= 0:
        return up, down
    share = candidate_n / n
    rho0 = rhos[:, None]
    up = up + _share_llr(candidate_events, total, share, rho0, rho0 * RATE_RATIO_STEPS[None, :])
    down = down + _share_llr(candidate_events, total, share, rho0, rho0 / RATE_RATIO_STEPS[None, :])
    return up, down


def ratio_interval(
    up: FloatArray, down: FloatArray, rhos: FloatArray, log_threshold: float
) -> tuple[float, float]:
    """The error-rate ratio's confidence sequence at this look, on the grid of `rhos`:
    (largest rho0 rejected from below, smallest rho0 rejected from above)."""
    rejected_low = _log_mean_exp(up) >= log_threshold
    rejected_high = _log_mean_exp(down) >= log_threshold
    low = float(rhos[rejected_low].max()) if rejected_low.any() else 0.0
    high = float(rhos[rejected_high].min()) if rejected_high.any() else math.inf
    return low, high


# ---------------------------------------------------------------------------- latency


def quantile_bounds(
    q: float, les: FloatArray, cumulative: FloatArray, alpha_side: float
) -> tuple[float, float]:
    """Bounds (lower, upper) with lower < Q <= upper shown at `alpha_side` each (see the
    module docstring, step 1); NaN where no bound is shown. `cumulative`: counts at `les`."""
    if cumulative.size == 0 or cumulative[-1] <= 0:
        return math.nan, math.nan
    finite = les[:-1]
    n = float(cumulative[-1])
    below = cumulative[:-1]
    need = math.log(1.0 / alpha_side)
    shown_below = bernoulli_log_e(n - below, n, 1.0 - q) >= need  # F(l) < q
    shown_above = bernoulli_log_e(below, n, q) >= need  # F(l) >= q
    lower = float(finite[shown_below].max()) if shown_below.any() else math.nan
    upper = float(finite[shown_above].min()) if shown_above.any() else math.nan
    if math.isfinite(lower) and math.isfinite(upper) and lower >= upper:
        return math.nan, math.nan  # contradictory evidence: say nothing
    return lower, upper


def bound_at_least(value: float, les: FloatArray) -> float:
    """The smallest finite bound >= value (NaN when none). Bounds within 0.01% count as equal:
    exposition formats print bounds rounded, and 1.2 x a bound of a geometric ladder must
    land on the ladder's bound 8 steps up, not one past it."""
    finite = les[:-1]
    hits = finite[finite >= value * (1.0 - 1e-4)]
    return float(hits.min()) if hits.size and math.isfinite(value) else math.nan


@dataclass(frozen=True)
class Window:
    """Where the baseline's quantile lies, at bucket resolution (step 1), and the matched bound
    of the window's top bucket (step 2). NaN where the data cannot say yet."""

    lower: float = math.nan  # the baseline's quantile is shown to be above this bound
    upper: float = math.nan  # ... and at or below this one
    candidate_above: float = math.nan  # the smallest bound >= (1 + r) x upper

    @property
    def resolution(self) -> float:
        """The smallest quantile rise every bucket of the window can show (step 2, widest pair)."""
        return self.candidate_above / self.lower - 1.0 if self.lower > 0 else math.nan


def quantile_window(
    q: float, r: float, les: FloatArray, cumulative: FloatArray, alpha_side: float
) -> Window:
    """Where the baseline's quantile lies, from its counts so far (`cumulative`)."""
    lower, upper = quantile_bounds(q, les, cumulative, alpha_side)
    return Window(lower, upper, bound_at_least((1.0 + r) * upper, les))


def above(bound: float, les: FloatArray, cumulative: FloatArray) -> float:
    """Exact count above a histogram bound (which must be one of `les`)."""
    index = int(np.searchsorted(les, bound))
    return float(cumulative[-1] - cumulative[index])


def bucket_pairs(r: float, les: FloatArray) -> NDArray[np.int64]:
    """Per finite bucket (l_k, l_k+1]: the index of its matched candidate bound, the smallest
    bound >= (1 + r) l_k+1 (-1 when the buckets end below it). Same tolerance as
    `bound_at_least`."""
    finite = les[:-1]
    wanted = (1.0 + r) * finite[1:] * (1.0 - 1e-4)
    index = np.searchsorted(finite, wanted, side="left").astype(np.int64)
    return np.where(index < finite.size, index, -1)


def matched_tail_llr(
    pairs: NDArray[np.int64], baseline: FloatArray, candidate: FloatArray
) -> FloatArray:
    """One look's log-LR, per bucket k (rows) and alternative (columns), of "a candidate
    request lands above c_k no more often than a baseline request above l_k" (step 2): the
    candidate's share of the look's slow requests against its share of all requests."""
    out = np.zeros((pairs.size, RATE_RATIO_STEPS.size))
    n_b, n_c = float(baseline[-1]), float(candidate[-1])
    if n_b <= 0 or n_c <= 0 or pairs.size == 0:
        return out
    usable = pairs >= 0
    slow_b = n_b - baseline[: pairs.size]
    slow_c = np.where(usable, n_c - candidate[np.maximum(pairs, 0)], 0.0)
    total = slow_b + slow_c
    ok = usable & (total > 0)
    share = n_c / (n_b + n_c)
    llr = _share_llr(slow_c[:, None], total[:, None], share, np.ones(1), RATE_RATIO_STEPS[None, :])
    out[ok] = llr[ok]
    return out


def window_log_e(llr: FloatArray, window: Window, les: FloatArray) -> float:
    """The matched-tail statistic: the smallest log e-value over the buckets the window leaves
    possible for the baseline's quantile (0 while the window is not known)."""
    if not (math.isfinite(window.lower) and math.isfinite(window.upper)) or llr.size == 0:
        return 0.0
    finite = les[:-1]
    inside = (finite[: llr.shape[0]] >= window.lower) & (
        finite[1 : llr.shape[0] + 1] <= window.upper
    )
    if not inside.any():
        return 0.0
    return float(np.min(_log_mean_exp(llr[inside])))


def exceeding(limit: float, les: FloatArray, cumulative: ArrayLike) -> float:
    """Requests above the smallest bound >= limit: never more than the true count above
    `limit`, so a one-sample test on it stays valid (SLO guard). 0 when no bound is that high."""
    counts = np.asarray(cumulative, dtype=np.float64)
    bound = bound_at_least(limit, les)
    return above(bound, les, counts) if math.isfinite(bound) else 0.0
