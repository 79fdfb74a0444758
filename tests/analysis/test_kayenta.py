"""Kayenta's Mann-Whitney classifier and score, on hand-checkable values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rollout.analysis.kayenta import (
    classify,
    group_score,
    mann_whitney_interval,
    remove_outliers,
    summary_score,
)

CONTROL = np.array([10.0, 11.0, 9.5, 10.5, 10.2, 9.8, 10.1, 10.7, 9.9, 10.3])


def test_u_and_p_value_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(1)
    control = rng.integers(0, 6, 25).astype(float)  # many ties
    experiment = rng.integers(1, 7, 18).astype(float)
    result = mann_whitney_interval(control, experiment, 0.98)
    ref = sps.mannwhitneyu(
        experiment, control, alternative="two-sided", method="asymptotic", use_continuity=True
    )
    assert result.u == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue)


def test_hodges_lehmann_estimate_and_interval_of_a_pure_shift() -> None:
    result = mann_whitney_interval(CONTROL, CONTROL + 5.0, 0.98)
    assert result.estimate == pytest.approx(5.0, abs=1e-6)
    assert result.low < 5.0 < result.high
    differences = np.subtract.outer(CONTROL + 5.0, CONTROL).ravel()
    assert differences.min() <= result.low and result.high <= differences.max()


def test_a_clear_increase_is_high_and_a_decrease_low() -> None:
    high = classify(CONTROL, CONTROL * 1.5)
    assert high.label == "High" and not high.critical
    assert high.effect_size == pytest.approx(1.5)
    assert high.ci_lower is not None and high.ci_lower > 0.25 * abs(high.estimate or 0)
    assert classify(CONTROL, CONTROL * 0.5).label == "Low"
    assert classify(CONTROL, CONTROL * 0.5, direction="increase").label == "Pass"
    assert classify(CONTROL, CONTROL * 1.5, direction="decrease").label == "Pass"


def test_effect_size_and_critical_thresholds() -> None:
    # significant, but the mean ratio 1.5 is under the allowed increase x2: Pass
    assert classify(CONTROL, CONTROL * 1.5, effect_size_thresholds=(0.5, 2.0)).label == "Pass"
    critical = classify(CONTROL, CONTROL * 1.5, is_critical=True, critical_thresholds=(1.0, 1.2))
    assert critical.label == "High" and critical.critical
    mild = classify(CONTROL, CONTROL * 1.5, is_critical=True, critical_thresholds=(1.0, 2.0))
    assert mild.label == "High" and not mild.critical
    cles = classify(CONTROL, CONTROL * 1.5, effect_measure="cles", effect_size_thresholds=(0, 0.9))
    assert cles.effect_size == pytest.approx(1.0) and cles.label == "High"


def test_no_data_labels() -> None:
    assert classify([], CONTROL).label == "Nodata"
    assert classify([math.nan], CONTROL, is_critical=True).critical
    assert classify([], CONTROL, data_required=True).label == "NodataFailMetric"
    assert classify([math.nan], CONTROL, nan_strategy="replace").label != "Nodata"


def test_identical_and_single_valued_data_pass() -> None:
    assert classify(CONTROL, CONTROL[::-1]).label == "Pass"
    assert classify([3.0, 3.0], [3.0, 3.0, 3.0]).label == "Pass"


def test_nans_are_removed_and_outliers_optionally() -> None:
    with_nan = np.append(CONTROL * 1.5, math.nan)
    assert classify(CONTROL, with_nan).label == "High"
    values = np.append(CONTROL, 1000.0)
    assert remove_outliers(values).tolist() == CONTROL.tolist()
    assert remove_outliers(np.array([5.0, 5.0, 5.0, 5.0, 9.0])).size == 5  # IQR 0: keep all


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        classify(CONTROL, CONTROL, direction="up")
    with pytest.raises(ValueError, match="effect_measure"):
        classify(CONTROL, CONTROL * 2, effect_measure="median")


def test_group_and_summary_scores() -> None:
    assert group_score(["Pass", "High", "Pass", "Nodata"]) == pytest.approx(200 / 3)
    assert group_score(["Nodata"]) is None
    groups = {"latency": 50.0, "errors": 100.0, "custom": None}
    # latency weighted 60; errors and custom share the remaining 40 (20 each)
    assert summary_score(groups, {"latency": 60.0}) == pytest.approx(30.0 + 20.0)
    assert summary_score({"a": 100.0, "b": 0.0}, {}) == pytest.approx(50.0)
