"""A history of looks as arrays: per interval, per version, counts and buckets.

Both judges (sequential and Kayenta-style) read the history through this. A
missing value (None, an invalid histogram) becomes 0 counts with a flag saying
it was missing, so the tests simply skip it and the judge can say NO_DATA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollout.analysis.observation import Bucket, Observation, VersionCounts

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class VersionSeries:
    requests: FloatArray  # per interval; 0 where missing
    errors: FloatArray  # per interval; 0 where missing (clipped to [0, requests])
    has_requests: BoolArray
    has_errors: BoolArray
    buckets: FloatArray  # (T, B) cumulative counts per interval on the common bounds
    has_buckets: BoolArray

    @property
    def total_requests(self) -> float:
        return float(self.requests.sum())


@dataclass(frozen=True)
class HistoryArrays:
    les: FloatArray  # common bucket bounds, last +Inf; empty if none usable
    baseline: VersionSeries
    candidate: VersionSeries

    @property
    def looks(self) -> int:
        return int(self.baseline.requests.size)


def _usable(buckets: tuple[Bucket, ...] | None) -> bool:
    if not buckets or len(buckets) < 2:
        return False
    bounds = [b.le for b in buckets]
    return (
        math.isinf(max(bounds))
        and all(not math.isnan(b.le) for b in buckets)
        and all(math.isfinite(float(b.count)) and b.count >= 0 for b in buckets)
        and any(math.isfinite(le) for le in bounds)
    )


def _common_bounds(histograms: list[tuple[Bucket, ...]]) -> FloatArray:
    layouts = {tuple(b.le for b in h) for h in histograms}
    if len(layouts) == 1:
        bounds = sorted(layouts.pop())
    else:
        # cumulative counts at a shared bound stay exact; others are dropped
        shared = set.intersection(*(set(layout) for layout in layouts))
        bounds = sorted(shared)
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return np.empty(0)
    return np.array(bounds, dtype=np.float64)


def _bucket_matrix(
    histograms: Sequence[tuple[Bucket, ...] | None], les: FloatArray
) -> tuple[FloatArray, BoolArray]:
    present = np.array([h is not None and _usable(h) for h in histograms], dtype=np.bool_)
    matrix = np.zeros((len(histograms), les.size))
    if les.size == 0:
        return matrix, np.zeros(len(histograms), dtype=np.bool_)
    wanted = {float(le): i for i, le in enumerate(les)}
    for row, h in enumerate(histograms):
        if h is None or not present[row]:
            continue
        values = {float(b.le): float(b.count) for b in h}
        if len(values) == les.size and all(le in values for le in wanted):
            matrix[row] = [values[float(le)] for le in les]
        else:
            for le, col in wanted.items():
                matrix[row, col] = values.get(le, 0.0)
    # Prometheus forces cumulative counts to be monotone; so do we
    np.maximum.accumulate(matrix, axis=1, out=matrix)
    return matrix, present


def _series(counts: Sequence[VersionCounts], les: FloatArray) -> VersionSeries:
    has_requests = np.array([c.requests is not None for c in counts], dtype=np.bool_)
    has_errors = np.array([c.errors is not None for c in counts], dtype=np.bool_)
    requests = np.array([max(float(c.requests or 0), 0.0) for c in counts])
    errors = np.minimum(np.array([max(float(c.errors or 0), 0.0) for c in counts]), requests)
    buckets, has_buckets = _bucket_matrix([c.buckets for c in counts], les)
    return VersionSeries(requests, errors, has_requests, has_errors, buckets, has_buckets)


def history_arrays(history: Sequence[Observation]) -> HistoryArrays:
    histograms = [
        h
        for obs in history
        for h in (obs.baseline.buckets, obs.candidate.buckets)
        if h is not None and _usable(h)
    ]
    les = _common_bounds(histograms) if histograms else np.empty(0)
    return HistoryArrays(
        les=les,
        baseline=_series([o.baseline for o in history], les),
        candidate=_series([o.candidate for o in history], les),
    )
