"""The peers' rollback rules and the oracle, vectorised over rollouts and parameter grids.

Each rule returns, per rollout, the index of the interval after which it rolls back, or NEVER.
A grid of settings gives an array of such indexes with the grid's axes first.

- Flagger-style: per interval, a check fails when the candidate's P95 > `latency_max` or its
  error rate > `error_max` (no data fails the check, as Flagger's "no values found"); roll back
  once `threshold` checks have failed (Flagger's `analysis.threshold`, failed checks counted over
  the rollout like `status.failedChecks`).
- Argo Rollouts-style: two metrics with a success condition per interval, the candidate/baseline
  P95 ratio `result[0] <= r` and the error-rate difference `result[0] <= d`; a metric fails when
  more than `failureLimit` measurements failed, and the analysis errors (abort) when more than
  `consecutiveErrorLimit` (4) measurements in a row had no data.
- Kayenta-style: at the end of each step (Kayenta's fixed canary window), Mann-Whitney U of the
  candidate's per-interval values against the baseline's (P95, error rate), two-sided at
  confidence 0.98 with the normal approximation and continuity correction (R's wilcox.test, as
  Kayenta), "High" when significant, higher, and the mean ratio is at least the effect-size bound;
  a "High" metric scores 50 < the marginal 75, so the canary fails.
- Oracle: Wald's SPRT of the true alternative against the policy's null boundary on the candidate's
  per-request indicators (latency above the baseline's true P95 x 1.2; error), which it sees
  exactly; no rule on this data can decide much sooner at the same error rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import mannwhitneyu

from benchmarks.simulate import Draws, FloatArray, IntArray, Scenario, histogram_quantile

NEVER = -1
CONSECUTIVE_ERROR_LIMIT = 4  # Argo Rollouts' default
KAYENTA_CONFIDENCE = 0.98  # Kayenta's default confLevel


def first_true(flags: np.ndarray) -> IntArray:
    """Index of the first True along the last axis, NEVER where there is none."""
    index = np.argmax(flags, axis=-1)
    return np.where(flags.any(axis=-1), index, NEVER).astype(np.int64)


@dataclass(frozen=True)
class Summary:
    """What the threshold rules read per interval: shape (rollouts, intervals)."""

    p95_baseline: FloatArray
    p95_candidate: FloatArray
    errors_baseline: FloatArray  # error rate, NaN without requests
    errors_candidate: FloatArray

    @staticmethod
    def of(draws: Draws, quantile: float) -> Summary:
        p95 = histogram_quantile(quantile, draws.buckets, draws.les)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(draws.requests > 0, draws.errors / draws.requests, np.nan)
        return Summary(p95[..., 0], p95[..., 1], rate[..., 0], rate[..., 1])

    def concat(self, other: Summary) -> Summary:
        return Summary(
            *(np.concatenate((a, b)) for a, b in zip(self.arrays(), other.arrays(), strict=True))
        )

    def arrays(self) -> tuple[FloatArray, ...]:
        return (self.p95_baseline, self.p95_candidate, self.errors_baseline, self.errors_candidate)


# ---------------------------------------------------------------------------- Flagger


def flagger(s: Summary, latency_max: FloatArray, error_max: FloatArray, threshold: int) -> IntArray:
    """Rollback index for every (latency_max, error_max) pair: shape (L, E, rollouts)."""
    error_failed = ~(s.errors_candidate[None] <= error_max[:, None, None])  # NaN fails
    result = np.empty((len(latency_max), *error_failed.shape[:2]), dtype=np.int64)
    for i, limit in enumerate(latency_max):  # one latency bound at a time bounds the memory
        failed = error_failed | ~(s.p95_candidate <= limit)[None]
        result[i] = first_true(np.cumsum(failed, axis=-1, dtype=np.int16) >= threshold)
    return result


# ---------------------------------------------------------------------------- Argo Rollouts


def _argo_metric(values: FloatArray, limits: FloatArray, failure_limit: int) -> IntArray:
    failed = values[None] > limits[:, None, None]  # NaN is an error, not a failure
    return first_true(np.cumsum(failed, axis=-1, dtype=np.int16) > failure_limit)


def _no_data_abort(values: FloatArray) -> IntArray:
    missing = np.isnan(values).astype(np.int16)
    run = np.zeros_like(missing)
    for t in range(missing.shape[-1]):
        run[..., t] = (run[..., t - 1] + 1) * missing[..., t] if t else missing[..., t]
    return first_true(run > CONSECUTIVE_ERROR_LIMIT)


def earliest(*indexes: IntArray) -> IntArray:
    big = np.iinfo(np.int64).max
    stacked = np.broadcast_arrays(*(np.where(i == NEVER, big, i) for i in indexes))
    best = np.minimum.reduce(stacked)
    return np.where(best == big, NEVER, best)


def argo(
    s: Summary, ratio_max: FloatArray, difference_max: FloatArray, failure_limit: int
) -> IntArray:
    """Rollback index for every (ratio_max, difference_max) pair: shape (L, E, rollouts)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = s.p95_candidate / s.p95_baseline
    difference = s.errors_candidate - s.errors_baseline
    latency = _argo_metric(ratio, ratio_max, failure_limit)
    errors = _argo_metric(difference, difference_max, failure_limit)
    abort = earliest(_no_data_abort(ratio), _no_data_abort(difference))
    return earliest(latency[:, None], errors[None, :], abort[None, None])


# ---------------------------------------------------------------------------- Kayenta


@dataclass(frozen=True)
class KayentaWindows:
    """Per step window and metric: significant-and-higher flags and the mean ratios."""

    ends: tuple[int, ...]  # last interval of each window
    higher: np.ndarray  # (2 metrics, windows, rollouts) bool
    mean_ratio: FloatArray  # (2, windows, rollouts)

    @staticmethod
    def of(s: Summary, step_ends: tuple[int, ...]) -> KayentaWindows:
        higher, ratios = [], []
        metrics = ((s.p95_baseline, s.p95_candidate), (s.errors_baseline, s.errors_candidate))
        for baseline, candidate in metrics:
            start = 0
            h, r = [], []
            for end in step_ends:
                b, c = baseline[:, start : end + 1], candidate[:, start : end + 1]
                with np.errstate(invalid="ignore"):
                    p = mannwhitneyu(
                        c, b, axis=1, method="asymptotic", use_continuity=True, nan_policy="omit"
                    ).pvalue
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean_b, mean_c = np.nanmean(b, axis=1), np.nanmean(c, axis=1)
                    ratio = np.where(mean_b > 0, mean_c / mean_b, np.where(mean_c > 0, np.inf, 1.0))
                h.append((np.asarray(p) < 1.0 - KAYENTA_CONFIDENCE) & (ratio > 1.0))
                r.append(ratio)
                start = end + 1
            higher.append(h)
            ratios.append(r)
        return KayentaWindows(step_ends, np.array(higher), np.array(ratios))


def kayenta(k: KayentaWindows, latency_bound: FloatArray, error_bound: FloatArray) -> IntArray:
    """Rollback index for every (latency_bound, error_bound) pair: shape (L, E, rollouts)."""
    ends = np.array(k.ends)

    def metric(m: int, bounds: FloatArray) -> IntArray:
        high = k.higher[m][None] & (k.mean_ratio[m][None] >= bounds[:, None, None])
        window = first_true(np.moveaxis(high, 1, -1))
        return np.where(window == NEVER, NEVER, ends[np.maximum(window, 0)])

    return earliest(metric(0, latency_bound)[:, None], metric(1, error_bound)[None, :])


# ---------------------------------------------------------------------------- oracle


def _wald(
    successes: IntArray, trials: IntArray, p0: FloatArray, p1: FloatArray, alpha: float, beta: float
) -> IntArray:
    """Wald's SPRT of p1 against p0 (per interval), looked at after every interval."""
    llr = successes * np.log(p1 / p0) + (trials - successes) * np.log((1 - p1) / (1 - p0))
    path = np.cumsum(llr, axis=-1)
    upper = first_true(path >= math.log((1 - beta) / alpha))
    lower = first_true(path <= math.log(beta / (1 - alpha)))
    rejected = (upper != NEVER) & ((lower == NEVER) | (upper < lower))
    return np.where(rejected, upper, NEVER)


def oracle(
    scenario: Scenario, draws: Draws, alpha: float, beta: float, tolerance: float
) -> IntArray | None:
    """The oracle's rollback index per rollout; None where no alternative exists (the truth
    sits on the null boundary, e.g. P95 exactly +20%)."""
    candidate_requests = draws.requests[..., 1]
    tail_p0, tail_p1 = draws.oracle_tail[:, 0], draws.oracle_tail[:, 1]
    errors_p0, errors_p1 = draws.oracle_errors[:, 0], draws.oracle_errors[:, 1]
    if scenario.kind == "latency":
        return _wald(draws.tail, candidate_requests, tail_p0, tail_p1, alpha, beta)
    if scenario.kind == "errors":
        return _wald(draws.errors[..., 1], candidate_requests, errors_p0, errors_p1, alpha, beta)
    if scenario.kind == "boundary":
        return None
    # A/A: no true alternative; test the smallest regressions the targets name (P95 +30%,
    # errors x2) with alpha split over the two tests, to show its false-rollback rate.
    p95 = scenario.baseline.quantile(1 - float(tail_p0[0]))
    bound = p95 * (1 + tolerance) / 1.3
    alt_tail = np.full_like(tail_p0, 1.0 - float(scenario.baseline.cdf(np.array([bound]))[0]))
    latency = _wald(draws.tail, candidate_requests, tail_p0, alt_tail, alpha / 2, beta)
    errors = _wald(
        draws.errors[..., 1], candidate_requests, errors_p0, 2 * errors_p0, alpha / 2, beta
    )
    return earliest(latency, errors)
