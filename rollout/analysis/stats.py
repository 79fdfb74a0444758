"""Pure numbers on histogram buckets and counts: quantiles, tail counts, intervals.

Everything here is deterministic (the bootstrap uses a fixed-seed generator) and
does no I/O. Histograms are cumulative bucket counts in ascending `le` order with
the last bound +Inf, exactly as Prometheus stores them.

The interpolation model is Prometheus' own (`histogram_quantile`): within a bucket
the requests are spread uniformly, the lowest bucket starts at 0. The tail and
rank functions below use the same model, so a quantile, a count above a latency
and the test built on them all describe the same interpolated distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from rollout.analysis.observation import Bucket

FloatArray = NDArray[np.float64]
BOOTSTRAP_SEED = 20240611  # fixed: the judge must be a pure function of its input
BOOTSTRAP_RESAMPLES = 400


def bucket_arrays(buckets: Sequence[Bucket]) -> tuple[FloatArray, FloatArray]:
    """(upper bounds, cumulative counts) sorted by bound, counts made monotone.

    Prometheus sorts by `le` and forces cumulative counts to be non-decreasing
    (a scrape racing an observation can break monotonicity); so do we.
    """
    ordered = sorted(buckets, key=lambda b: b.le)
    les = np.array([b.le for b in ordered], dtype=np.float64)
    counts = np.maximum.accumulate(np.array([float(b.count) for b in ordered], dtype=np.float64))
    return les, counts


def valid_histogram(les: FloatArray, counts: FloatArray) -> bool:
    """Shape Prometheus can interpolate: >= 2 buckets, last +Inf, finite counts."""
    return (
        les.size >= 2
        and math.isinf(les[-1])
        and les[-1] > 0
        and bool(np.all(np.isfinite(les[:-1])))
        and bool(np.all(np.isfinite(counts)))
    )


def histogram_quantile(q: float, les: FloatArray, counts: FloatArray) -> float:
    """Prometheus' `histogram_quantile(q, ...)` on one histogram (cumulative counts).

    q < 0 -> -Inf, q > 1 -> +Inf; no +Inf bucket, fewer than 2 buckets or no
    observations -> NaN; a rank in the +Inf bucket -> the highest finite bound;
    the lowest bucket is interpolated from 0 unless its bound is <= 0.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not valid_histogram(les, counts):
        return math.nan
    counts = np.maximum.accumulate(counts)
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    finite = counts[:-1]
    hits = np.nonzero(finite >= rank)[0]
    b = int(hits[0]) if hits.size else les.size - 1
    if b == les.size - 1:
        return float(les[-2])
    if b == 0 and les[0] <= 0:
        return float(les[0])
    start, end, in_bucket = 0.0, float(les[b]), float(counts[b])
    if b > 0:
        start = float(les[b - 1])
        in_bucket -= float(counts[b - 1])
        rank -= float(counts[b - 1])
    if in_bucket == 0:
        return math.nan if rank == 0 else end
    return float(start + (end - start) * (rank / in_bucket))


def rank_values(ranks: FloatArray, les: FloatArray, counts: FloatArray) -> FloatArray:
    """Latency at which the interpolated cumulative count reaches each rank.

    Row-wise over `counts` of shape (T, B) (one cumulative histogram per row) with
    one rank per row. Unlike `histogram_quantile`, a rank inside the +Inf bucket
    gives +Inf: used for upper confidence bounds, which must not be capped.
    """
    counts = np.atleast_2d(counts)
    ranks = np.broadcast_to(np.asarray(ranks, dtype=np.float64), counts.shape[:1])
    lower_les = np.concatenate(([0.0], les[:-1]))
    out = np.full(ranks.shape, np.inf)
    reached = counts >= ranks[:, None]
    reached[:, -1] = True
    b = np.argmax(reached, axis=1)
    rows = np.arange(counts.shape[0])
    finite = b < les.size - 1
    below = np.where(b > 0, counts[rows, np.maximum(b - 1, 0)], 0.0)
    width_count = counts[rows, b] - below
    frac = np.divide(ranks - below, width_count, out=np.zeros_like(ranks), where=width_count > 0)
    start = np.where(b > 0, lower_les[b], np.minimum(0.0, les[0]))
    value = start + (les[np.minimum(b, les.size - 2)] - start) * np.clip(frac, 0.0, 1.0)
    out[finite] = value[finite]
    out[ranks <= 0] = np.minimum(0.0, les[0])
    return out


def count_above(x: FloatArray, les: FloatArray, counts: FloatArray) -> FloatArray:
    """Estimated number of requests above latency x, row-wise like `rank_values`.

    Within the bucket (a, b] that holds x, the count above is interpolated
    log-linearly between the exact counts above a and above b (an exponential tail
    inside the bucket), linearly where either is 0. The tests only count above
    thresholds near the P95, where the density falls across a bucket: a linear
    interpolation (histogram_quantile's) overstates the tail there, by half at
    +20% in a .1-.15 s bucket, and would roll back candidates the policy allows.
    Above the highest finite bound nothing can be interpolated: the +Inf bucket's
    requests count as above x only when x is at most that bound (never overcounts).
    """
    counts = np.atleast_2d(counts)
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), counts.shape[:1])
    rows = np.arange(counts.shape[0])
    total = counts[:, -1]
    lower = np.concatenate(([min(0.0, float(les[0]))], les[:-1]))
    finite = les.size - 1
    k = np.minimum(np.searchsorted(les[:finite], x, side="left"), finite - 1)
    above_a = total - np.where(k > 0, counts[rows, np.maximum(k - 1, 0)], 0.0)
    above_b = total - counts[rows, k]
    width = les[k] - lower[k]
    frac = np.clip(np.divide(x - lower[k], width, out=np.ones_like(x), where=width > 0), 0.0, 1.0)
    both = (above_a > 0) & (above_b > 0)
    ratio = np.divide(above_b, above_a, out=np.ones_like(above_a), where=both)
    log_linear = above_a * ratio**frac
    linear = above_a - (above_a - above_b) * frac
    result = np.where(both, log_linear, linear)
    result = np.where(x <= lower[0], total, result)
    return np.where(x > les[finite - 1], 0.0, np.maximum(result, 0.0))


# ---------------------------------------------------------------- reported intervals


@dataclass(frozen=True)
class RatioInterval:
    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int


def bootstrap_quantile_ratio(
    q: float,
    les: FloatArray,
    baseline_counts: FloatArray,
    candidate_counts: FloatArray,
    confidence: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> RatioInterval | None:
    """Percentile interval of candidate/baseline quantile by multinomial bootstrap.

    Each version's per-bucket counts are resampled as a multinomial with its own
    observed proportions; a fixed seed keeps the result a function of the input.
    """
    base_q = histogram_quantile(q, les, baseline_counts)
    cand_q = histogram_quantile(q, les, candidate_counts)
    if not (math.isfinite(base_q) and math.isfinite(cand_q)) or base_q <= 0:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)

    def resample(cumulative: FloatArray) -> FloatArray:
        per_bucket = np.diff(np.concatenate(([0.0], cumulative)))
        n = int(np.rint(cumulative[-1]))
        draws = rng.multinomial(n, per_bucket / per_bucket.sum(), size=resamples)
        cum = np.cumsum(draws, axis=1).astype(np.float64)
        ranks = q * cum[:, -1]
        quantiles = rank_values(ranks, les, cum)
        # histogram_quantile caps a rank in the +Inf bucket at the highest finite bound
        return np.where(np.isinf(quantiles), les[-2], quantiles)

    base = resample(baseline_counts)
    cand = resample(candidate_counts)
    ratios = np.divide(cand, base, out=np.full_like(cand, np.inf), where=base > 0)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return RatioInterval(cand_q / base_q, float(low), float(high), confidence, resamples)


@dataclass(frozen=True)
class BinnedMannWhitney:
    """Mann-Whitney U of candidate vs baseline latencies known only by bucket."""

    u: float  # candidate's U: pairs where candidate is slower, ties count 1/2
    z: float
    p_value: float  # one-sided: candidate stochastically slower
    cles: float  # U / (n_c n_b): P(candidate slower) + P(tie)/2


def binned_mann_whitney(
    baseline_counts: FloatArray, candidate_counts: FloatArray
) -> BinnedMannWhitney | None:
    """Requests in the same bucket are ties; normal approximation with tie and
    continuity correction, as scipy's `mannwhitneyu(..., method="asymptotic")`."""
    base = np.diff(np.concatenate(([0.0], baseline_counts)))
    cand = np.diff(np.concatenate(([0.0], candidate_counts)))
    n_b, n_c = base.sum(), cand.sum()
    if n_b <= 0 or n_c <= 0:
        return None
    below_b = np.concatenate(([0.0], np.cumsum(base)[:-1]))
    u = float(np.sum(cand * (below_b + 0.5 * base)))
    n = n_b + n_c
    ties = base + cand
    tie_term = float(np.sum(ties**3 - ties)) / (n * (n - 1)) if n > 1 else 0.0
    var = n_b * n_c / 12.0 * ((n + 1) - tie_term)
    mean = n_b * n_c / 2.0
    if var <= 0:
        return BinnedMannWhitney(u, 0.0, 1.0, float(u / (n_b * n_c)))
    z = (u - mean - 0.5) / math.sqrt(var)
    return BinnedMannWhitney(u, float(z), float(sps.norm.sf(z)), float(u / (n_b * n_c)))


def rate_ratio_interval(
    candidate_errors: float, total_errors: float, candidate_share: float, confidence: float
) -> tuple[float, float] | None:
    """Interval of the candidate/baseline error-rate ratio from the conditional binomial.

    Clopper-Pearson on the candidate's share of errors, mapped through
    rho = p (1 - s) / (s (1 - p)) with the pooled traffic share s (exact when s
    was constant; a reported number, the decision uses the sequential test).
    """
    if total_errors <= 0 or not 0.0 < candidate_share < 1.0:
        return None
    k, n = round(candidate_errors), round(total_errors)
    tail = (1.0 - confidence) / 2.0
    p_low = float(sps.beta.ppf(tail, k, n - k + 1)) if k > 0 else 0.0
    p_high = float(sps.beta.ppf(1.0 - tail, k + 1, n - k)) if k < n else 1.0
    odds = (1.0 - candidate_share) / candidate_share

    def to_rho(p: float) -> float:
        return math.inf if p >= 1.0 else p / (1.0 - p) * odds

    return to_rho(p_low), to_rho(p_high)
