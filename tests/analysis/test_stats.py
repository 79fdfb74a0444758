"""Quantiles, tail counts and reported intervals on histogram buckets, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rollout.analysis import stats
from rollout.analysis.observation import Bucket

LES = np.array([0.1, 0.2, 0.5, math.inf])
COUNTS = np.array([10.0, 50.0, 90.0, 100.0])


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0.05),  # rank 5 of 10 in the lowest bucket, interpolated from 0
        (0.3, 0.15),  # rank 30: 20 of the 40 in (0.1, 0.2]
        (0.5, 0.2),  # rank 50 exactly at the top of (0.1, 0.2]
        (0.9, 0.5),
        (0.95, 0.5),  # rank 95 in the +Inf bucket: the highest finite bound
        (1.0, 0.5),
    ],
)
def test_histogram_quantile_matches_prometheus_interpolation(q: float, expected: float) -> None:
    assert stats.histogram_quantile(q, LES, COUNTS) == pytest.approx(expected)


def test_histogram_quantile_edge_cases() -> None:
    assert stats.histogram_quantile(-0.1, LES, COUNTS) == -math.inf
    assert stats.histogram_quantile(1.1, LES, COUNTS) == math.inf
    assert math.isnan(stats.histogram_quantile(0.5, LES, np.zeros(4)))  # no observations
    no_inf = np.array([0.1, 0.2, 0.5, 1.0])
    assert math.isnan(stats.histogram_quantile(0.5, no_inf, COUNTS))
    assert math.isnan(stats.histogram_quantile(0.5, np.array([math.inf]), np.array([5.0])))
    # the lowest bucket's bound <= 0: that bound, no interpolation
    les = np.array([0.0, 1.0, math.inf])
    assert stats.histogram_quantile(0.2, les, np.array([5.0, 10.0, 10.0])) == 0.0


def test_bucket_arrays_sorts_and_forces_monotone_counts() -> None:
    buckets = (Bucket(math.inf, 100), Bucket(0.1, 10), Bucket(0.5, 40), Bucket(0.2, 50))
    les, counts = stats.bucket_arrays(buckets)
    assert les.tolist() == [0.1, 0.2, 0.5, math.inf]
    assert counts.tolist() == [10.0, 50.0, 50.0, 100.0]
