"""Quantiles, tail counts and reported intervals on histogram buckets, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

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


def test_count_above_interpolates_within_a_bucket() -> None:
    above = stats.count_above(np.array([0.15, 0.2, 0.5, 0.05, 0.6]), LES, np.tile(COUNTS, (5, 1)))
    # 0.15: halfway, log-linear between 90 above 0.1 and 50 above 0.2: 90 * (50/90)**0.5;
    # 0.05: between 100 and 90 likewise; 0.6 lies in the +Inf bucket: count nothing
    expected = [90 * (50 / 90) ** 0.5, 50.0, 10.0, 100 * 0.9**0.5, 0.0]
    assert above.tolist() == pytest.approx(expected)


def test_count_above_follows_a_falling_tail_inside_a_wide_bucket() -> None:
    """A lognormal (median 60 ms, sigma 0.42) has 5% above 120 ms; 120 ms sits inside the
    (0.1, 0.15] bucket, where a straight line between the bounds would say 7.3%."""
    les = np.array([0.05, 0.075, 0.1, 0.15, 0.2, 0.5, math.inf])
    cdf = stats_norm_cdf((np.log(les[:-1]) - math.log(0.06)) / 0.42)
    counts = np.append(cdf, 1.0) * 100_000
    share = stats.count_above(np.array([0.12]), les, counts[None, :])[0] / 100_000
    truth = 1 - stats_norm_cdf(np.array([(math.log(0.12) - math.log(0.06)) / 0.42]))[0]
    assert share == pytest.approx(truth, rel=0.05)


def stats_norm_cdf(z: np.ndarray) -> np.ndarray:
    return np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in z])


def test_rank_values_is_uncapped_in_the_inf_bucket() -> None:
    values = stats.rank_values(np.array([30.0, 95.0]), LES, np.tile(COUNTS, (2, 1)))
    assert values[0] == pytest.approx(0.15)
    assert values[1] == math.inf


def test_bootstrap_ratio_interval_is_deterministic_and_shrinks_with_data() -> None:
    base = np.array([100.0, 600.0, 950.0, 1000.0])
    cand = np.array([50.0, 400.0, 900.0, 1000.0])
    first = stats.bootstrap_quantile_ratio(0.95, LES, base, cand, 0.99)
    second = stats.bootstrap_quantile_ratio(0.95, LES, base, cand, 0.99)
    big = stats.bootstrap_quantile_ratio(0.95, LES, base * 100, cand * 100, 0.99)
    assert first is not None and big is not None
    assert first == second
    assert first.low <= first.estimate <= first.high
    assert big.high - big.low < first.high - first.low
    assert first.estimate == pytest.approx(
        stats.histogram_quantile(0.95, LES, cand) / stats.histogram_quantile(0.95, LES, base)
    )


def test_binned_mann_whitney_matches_scipy_on_the_bucket_indices() -> None:
    base = np.array([30.0, 50.0, 15.0, 5.0])
    cand = np.array([10.0, 30.0, 40.0, 20.0])
    result = stats.binned_mann_whitney(np.cumsum(base), np.cumsum(cand))
    assert result is not None
    samples_b = np.repeat(np.arange(4), base.astype(int))
    samples_c = np.repeat(np.arange(4), cand.astype(int))
    ref = sps.mannwhitneyu(
        samples_c, samples_b, alternative="greater", method="asymptotic", use_continuity=True
    )
    assert result.u == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue)
    assert result.cles == pytest.approx(ref.statistic / (base.sum() * cand.sum()))


def test_rate_ratio_interval_maps_clopper_pearson_through_the_share() -> None:
    low, high = stats.rate_ratio_interval(5, 10, 0.5, 0.95) or (0.0, 0.0)
    ci = sps.binomtest(5, 10).proportion_ci(confidence_level=0.95, method="exact")
    assert low == pytest.approx(ci.low / (1 - ci.low))
    assert high == pytest.approx(ci.high / (1 - ci.high))
    assert stats.rate_ratio_interval(0, 0, 0.5, 0.95) is None
