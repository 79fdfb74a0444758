"""Pure numbers on histogram buckets: Prometheus' quantile interpolation, for the report.

Histograms are cumulative bucket counts in ascending `le` order with the last bound +Inf,
exactly as Prometheus stores them. `histogram_quantile` spreads requests uniformly within a
bucket, as Prometheus does: a point estimate to show people, never an input of a test (the
tests count exactly at bucket bounds, see `sequential.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from rollout.analysis.observation import Bucket, VersionCounts

FloatArray = NDArray[np.float64]


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


def version_p95(counts: VersionCounts) -> float | None:
    """One version's P95 over one look, for people to read (None without observations)."""
    if not counts.buckets:
        return None
    les, cumulative = bucket_arrays(counts.buckets)
    if not cumulative.size or cumulative[-1] <= 0:
        return None
    value = histogram_quantile(0.95, les, cumulative)
    return value if math.isfinite(value) else None


def version_error_rate(counts: VersionCounts) -> float | None:
    """One version's error rate over one look (None without requests or error counts)."""
    if not counts.requests or counts.errors is None:
        return None
    return counts.errors / counts.requests
