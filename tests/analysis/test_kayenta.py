"""Kayenta's Mann-Whitney classifier and score, on hand-checkable values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
    # Kayenta's judge widens the fences to the 1st/99th percentiles: 11 values lose none
    assert remove_outliers(values).size == values.size
    assert remove_outliers(values, reduce_sensitivity=False).tolist() == CONTROL.tolist()
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


# ------------------------------------------------------------------ Kayenta's own cases
#
# Ported from Kayenta's MannWhitneyClassifier suite: spinnaker/kayenta (mirrored in
# spinnaker/spinnaker), kayenta-judge/src/test/scala/com/netflix/kayenta/judge/
# ClassifierSuite.scala, the version with the CLES and zero-mean cases.
# The data and the expected labels are copied; each case keeps the suite's test name. Kayenta's
# classifier takes (tolerance, confLevel, effectSizeThresholds, criticalThresholds,
# effectSizeMeasure) and classify(control, experiment, direction, nanStrategy, isCriticalMetric).

# fmt: off
EXP_NEAR_10 = [
    9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884,
    8.3774505409784421, 8.9359264399606282, 8.2707663324728511, 9.7484308126716925,
    11.623746715547156, 9.2753442679633942, 8.1538047749171518, 10.562020975754294,
    13.498135575451835, 11.054419256110332, 6.9538903590055092, 12.521008342195479,
    9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
    8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249,
    10.086167067942661, 11.42107515483087, 9.3792347813644952, 7.7980320148552593,
    10.62339807275746, 11.909642062063739,
]
CTL_NEAR_10 = [
    11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657,
    9.7944630265656727, 9.6037918603687302, 6.1867793350339388, 12.345599159550174,
    10.371891733859533, 8.6094300785016724, 9.913162673361084, 10.361375299003466,
    14.206800387518818, 10.946153754753301, 10.215876627044048, 11.739760899484603,
    10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
    12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067,
    6.2105278541727778, 10.160401684903775, 8.3457712066455461, 8.383822063895833,
    7.0020205070083765, 10.755757401808442,
]
EXP_NEAR_20 = [
    20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562,
    19.510058772176841, 19.392005525270303, 22.926528314912101, 17.156530276709894,
    18.655117916226171, 23.422607911610392, 24.055817684156644, 22.62689958516501,
    21.979472967817678, 21.659318607218694, 20.067707574072426, 22.119570836305414,
    16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
    17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378,
    21.771118944087092, 21.809622806176627, 20.961762909905271, 20.977571577503021,
    19.106303205498794, 16.976918966987078,
]
CTL_NEAR_20 = [
    20.758113589510348, 22.802059629464559, 20.612340363492208, 20.973274654749986,
    23.469237330498622, 21.53133988954805, 21.767353687439805, 18.308050730374301,
    19.062145167827566, 25.879498436001779, 18.982629726336128, 19.387920182269266,
    18.995398251246982, 24.228420230932805, 20.050985172694688, 18.2340451091756,
    17.870515494460435, 23.058103863806618, 18.400259567501134, 16.971352091177167,
    19.467529066052151, 17.90465423342031, 17.553948617825831, 16.104611843907193,
    24.38171081433039, 15.919294339922635, 20.479409626304697, 19.08307201492406,
    17.455788050722866, 18.853826823235142,
]
LARGE_EXP = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6666666666666572, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 3.7037037037036811, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142,
    0.0, 0.0, 0.0, 0.0, 3.3333333333333428, 0.0, 1.7543859649122737, 0.0,
    1.8518518518518476, 0.0, 0.0, 1.8518518518518476, 0.0, 0.0, 1.5151515151515156,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.7857142857142776,
    1.3333333333333286, 0.0, 3.1250000000000142, 1.9607843137255117,
    1.4492753623188293, 2.4390243902438868, 1.6393442622950687, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.6129032258064484, 1.9607843137255117, 1.5873015873015817, 0.0,
    0.0, 2.8169014084507182, 0.0, 0.0, 3.0303030303030454, 0.0, 0.0,
    3.3898305084745743, 0.0, 0.0, 1.234567901234584, 0.0, 0.0, 0.0, 0.0,
    1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 1.6949152542372872, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.470588235294116, 0.0, 0.0, 1.3698630136986196,
    3.225806451612911, 1.7543859649122879, 3.4482758620689538, 0.0,
    3.3333333333333428, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 0.0,
    1.4285714285714448, 0.0, 0.0, 1.8867924528301927, 2.0000000000000284, 0.0, 0.0,
    0.0, 2.985074626865682, 0.0, 0.0, 1.6666666666666714, 0.0, 0.0, 1.5625,
    1.9230769230769198, 0.0, 1.8518518518518619, 0.0, 2.7027027027027088, 0.0, 0.0,
    0.0, 1.3513513513513544, 0.0, 1.818181818181813, 0.0, 1.6666666666666572, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 1.4285714285714164, 0.0,
    0.0, 4.1095890410959015, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0,
    1.8518518518518476, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0, 1.8867924528301785,
    1.4285714285714164, 0.0, 0.0, 1.5625, 1.8867924528301927, 0.0, 0.0, 0.0, 0.0,
    2.040816326530603, 1.818181818181813, 0.0, 0.0, 1.6393442622950687, 0.0,
    1.7241379310344769, 1.5151515151515156, 2.564102564102555, 0.0, 0.0, 0.0, 0.0,
    5.5555555555555571, 0.0, 0.0, 4.0816326530612059, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 3.5714285714285836, 0.0, 2.040816326530603, 3.1746031746031633, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
]
LARGE_CTL = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.5384615384615614, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0,
    1.6949152542373014, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 1.470588235294116, 0.0, 0.0, 0.0, 0.0, 1.7543859649122879, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6393442622950687, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5873015873015817,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.4925373134328339, 0.0, 0.0, 0.0, 3.1249999999999858, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    2.9850746268656536, 0.0, 2.5000000000000284, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.7857142857142776, 0.0, 0.0, 0.0,
]
CLES_PASS_EXP = [
    0.00000000e00, 0.00000000e00, 1.46580998e-04, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 7.94701987e-05, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 2.68889486e-05, 0.00000000e00,
    0.00000000e00, 2.64935753e-05, 0.00000000e00, 0.00000000e00,
    0.00000000e00, 2.61608895e-05, 1.27824931e-04, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 2.54511211e-05, 2.58665287e-05,
    7.63339355e-05, 0.00000000e00, 2.54239443e-05, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 2.61001201e-05, 5.20101940e-05,
    0.00000000e00, 2.64452319e-05, 5.27551370e-05, 7.83719533e-05,
    5.19467027e-05, 2.58344528e-05, 2.58899676e-05, 0.00000000e00,
    2.59497613e-05, 2.57938043e-05, 7.78553448e-05, 2.60593110e-05,
    2.61001201e-05, 0.00000000e00, 0.00000000e00, 2.59349551e-05,
    2.60559160e-05, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 0.00000000e00, 2.58819267e-05,
    0.00000000e00, 2.58825965e-05, 2.57572635e-05, 2.56877906e-05,
]
CLES_PASS_CTL = [
    0.00000000e00, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    2.91528191e-05, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    2.98284862e-05, 5.99916012e-05, 0.00000000e00, 5.92276712e-05,
    0.00000000e00, 2.98053709e-05, 0.00000000e00, 2.97309350e-05,
    5.92153960e-05, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    2.92800047e-05, 0.00000000e00, 2.94550810e-05, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 5.83958656e-05, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    2.88600289e-05, 2.90334756e-05, 2.91740817e-05, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 0.00000000e00, 0.00000000e00,
    0.00000000e00, 2.92765758e-05, 0.00000000e00, 0.00000000e00,
    0.00000000e00, 0.00000000e00, 0.00000000e00, 2.94637596e-05,
    5.89136326e-05, 0.00000000e00, 0.00000000e00, 0.00000000e00,
]
CLES_HIGH_EXP = [
    0.00689808, 0.00568664, 0.00680876, 0.00642045, 0.00561825,
    0.00472294, 0.00398378, 0.00392403, 0.00421201, 0.0047529,
    0.00460853, 0.00439888, 0.00561875, 0.01998866, 0.0124369,
    0.00624391, 0.00444361, 0.00442059, 0.00372095, 0.00540736,
    0.00715402, 0.00425974, 0.00414409, 0.01172436, 0.0125959,
    0.00371891, 0.00429855, 0.00369876, 0.00325709, 0.00415943,
    0.00371754, 0.00445212, 0.00521721, 0.00443938, 0.00380859,
    0.01602997, 0.00788885, 0.0038155, 0.00326921, 0.00336928,
    0.00365917, 0.00333869, 0.00427639, 0.00355911, 0.00381224,
    0.00360057, 0.00349305, 0.00401164, 0.00351947, 0.00356299,
    0.003407, 0.00414397, 0.00393346, 0.00413318, 0.00359041,
    0.00366314, 0.00309383, 0.00383733, 0.00363324, 0.00280674,
]
CLES_HIGH_CTL = [
    0.00081956, 0.00239282, 0.00133685, 0.00094917, 0.00029518,
    0.00035344, 0.00048194, 0.00034893, 0.0003202, 0.00079814,
    0.00090881, 0.00072599, 0.00037819, 0.00038286, 0.00057604,
    0.00064821, 0.00032194, 0.0002245, 0.00025202, 0.00071997,
    0.00022721, 0.00042578, 0.00042496, 0.00045613, 0.00037072,
    0.0003317, 0.00032889, 0.00032749, 0.00036093, 0.00029285,
    0.00038401, 0.00044467, 0.00071086, 0.00036692, 0.00052079,
    0.00074974, 0.00128791, 0.00062046, 0.00086345, 0.00118563,
    0.00103379, 0.00028913, 0.00057628, 0.00057943, 0.00048735,
    0.00029409, 0.0002005, 0.00016612, 0.00089312, 0.00059367,
    0.00061706, 0.00163313, 0.00097784, 0.00029305, 0.00058839,
    0.00085212, 0.00048298, 0.00035546, 0.00025866, 0.00038767,
]
CLES_LOW_EXP = [
    24.24693907, 26.13330099, 22.50056744, 24.36646841, 23.19935673,
    19.43801304, 20.99654102, 18.90793651, 21.31949881, 21.83528381,
    21.64211206, 23.13365968, 21.09163134, 19.45540615, 20.74783158,
    22.25527831, 19.82051791, 20.9865487, 19.94450026, 23.2904056,
    18.18408424, 22.13843542, 19.42896044, 19.84140464, 23.91557662,
    21.00981557, 21.8594633, 23.11630163, 22.95700392, 17.80045135,
]
CLES_LOW_CTL = [
    25.09626848, 26.15032198, 24.88431438, 24.18870163, 22.14684987,
    28.01743443, 21.29910501, 27.24688773, 28.64187535, 27.03504445,
    24.67888311, 22.35137878, 27.41640397, 26.00225548, 23.02118534,
    25.99647292, 22.77446912, 25.56704719, 25.57025827, 21.2721602,
    23.12987357, 24.59111604, 27.48865016, 27.21967755, 23.5951111,
    22.5429607, 25.83015564, 23.31965305, 24.3911644, 25.11468194,
]
ZERO_MEAN_CRITICAL_EXP = [
    0.05000000074505806, 0.05000000074505806, 0.01666666753590107,
    0.01666666753590107, 0.01666666753590107, 0.05000000074505806,
    0.03333333507180214, 0.05000000260770321, 0.05000000260770321,
    0.13333333656191826,
]
NEAR_55 = [54.9, 54.5, 55.1, 55.6, 57.4]
HIGH_5 = [20.0, 22.0, 21.0, 25.0, 30.0]
LOW_5 = [1.0, 2.2, 1.1, 2.5, 3.0]
# fmt: on


@dataclass(frozen=True)
class KayentaCase:
    name: str  # the test's name in ClassifierSuite.scala
    experiment: list[float]
    control: list[float]
    label: str
    direction: str = "either"
    critical: bool | None = None  # the suite's `result.critical` assertion, where it has one
    options: dict[str, Any] = field(default_factory=dict)


KAYENTA_CASES = [
    KayentaCase("Pass Metric", EXP_NEAR_10, CTL_NEAR_10, "Pass"),
    KayentaCase("High Metric", EXP_NEAR_20, CTL_NEAR_10, "High"),
    KayentaCase("Low Metric", EXP_NEAR_10, CTL_NEAR_20, "Low"),
    KayentaCase("Directional Test: Increase", EXP_NEAR_10, CTL_NEAR_20, "Pass", "increase"),
    KayentaCase("Directional Test: Decrease", EXP_NEAR_20, CTL_NEAR_10, "Pass", "decrease"),
    KayentaCase(
        "Directional Test: High Metric",
        EXP_NEAR_20,
        CTL_NEAR_10,
        "High",
        "increase",
        critical=False,
    ),
    KayentaCase("Directional Test: Low Metric", EXP_NEAR_10, CTL_NEAR_20, "Low", "decrease"),
    KayentaCase("High Metric (Large Input)", LARGE_EXP, LARGE_CTL, "High", critical=False),
    KayentaCase(
        "Mean Ratio Effect Size: High",
        HIGH_5,
        LOW_5,
        "High",
        options={"effect_size_thresholds": (0.8, 1.2)},
    ),
    KayentaCase(
        "Mean Ratio Effect Size: Low",
        EXP_NEAR_10,
        CTL_NEAR_20,
        "Low",
        "decrease",
        options={"effect_size_thresholds": (0.8, 1.2)},
    ),
    KayentaCase(
        "Mean Ratio Effect Size: Pass",
        [10.0, 12.2, 10.1, 12.5, 23.0],
        HIGH_5,
        "Pass",
        options={"effect_size_thresholds": (0.5, 1.0), "nan_strategy": "remove"},
    ),
    KayentaCase(
        "Mean Ratio Effect Size: Pass (Large Input)",
        LARGE_EXP,
        LARGE_CTL,
        "Pass",
        options={"effect_size_thresholds": (1.0, 5.0)},
    ),
    KayentaCase(
        "CLES Effect Size: Pass",
        CLES_PASS_EXP,
        CLES_PASS_CTL,
        "Pass",
        options={
            "tolerance": 0.2,
            "conf_level": 0.98,
            "effect_measure": "cles",
            "effect_size_thresholds": (0.5, 0.8),
        },
    ),
    KayentaCase(
        "CLES Effect Size: High",
        CLES_HIGH_EXP,
        CLES_HIGH_CTL,
        "High",
        options={
            "tolerance": 0.2,
            "conf_level": 0.98,
            "effect_measure": "cles",
            "effect_size_thresholds": (0.2, 0.8),
        },
    ),
    KayentaCase(
        "CLES Effect Size: Low",
        CLES_LOW_EXP,
        CLES_LOW_CTL,
        "Low",
        options={
            "tolerance": 0.2,
            "conf_level": 0.98,
            "effect_measure": "cles",
            "effect_size_thresholds": (0.2, 0.8),
        },
    ),
    KayentaCase(
        "Critical Effect Size: Critical High",
        HIGH_5,
        LOW_5,
        "High",
        critical=True,
        options={"critical_thresholds": (1.0, 1.2), "is_critical": True},
    ),
    KayentaCase(
        "Critical Effect Size: Critical Low",
        [2.0, 2.0, 2.0, 2.0, 3.0],
        [10.0, 20.2, 10.1, 20.5, 30.0],
        "Low",
        critical=True,
        options={"critical_thresholds": (1.2, 1.0), "is_critical": True},
    ),
    KayentaCase(
        "Critical Effect Size: High",
        HIGH_5,
        LOW_5,
        "High",
        critical=False,
        options={
            "effect_size_thresholds": (1.0, 5.0),
            "critical_thresholds": (1.0, 13.0),
            "is_critical": True,
        },
    ),
    KayentaCase(
        "Critical Effect Size: Pass",
        HIGH_5,
        LOW_5,
        "Pass",
        critical=False,
        options={
            "effect_size_thresholds": (1.0, 13.0),
            "critical_thresholds": (1.0, 15.0),
            "is_critical": True,
        },
    ),
    KayentaCase(
        "Critical Effect Size: Critical High (Default Thresholds)",
        HIGH_5,
        LOW_5,
        "High",
        critical=True,
        options={"is_critical": True},
    ),
    KayentaCase("Tied Observations", [1.0, 1.0, 1.0], [1.0, 1.0], "Pass", "decrease"),
    KayentaCase(
        "Identical Populations",
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [5.0, 4.0, 3.0, 2.0, 1.0],
        "Pass",
        "decrease",
    ),
    KayentaCase(
        "Leading Zero Identical Population",
        [0.0, 1.0, 1.0, 1.0, 1.0],
        [1.0] * 5,
        "Pass",
        "decrease",
    ),
    KayentaCase("Missing Experiment Data", [], [1.0, 2.0, 3.0, 4.0, 5.0], "Nodata", "decrease"),
    KayentaCase(
        "Missing Experiment Data: Critical Metric",
        [],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        "Nodata",
        "decrease",
        critical=True,
        options={"is_critical": True},
    ),
    KayentaCase(
        "Missing Experiment Data with NaN Replacement",
        [],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        "Pass",
        "decrease",
        options={"nan_strategy": "replace"},
    ),
    KayentaCase("Majority Tied Observations", [1.0, 1.0, 1.0, 1.0, 10.0], [1.0] * 5, "Pass"),
    KayentaCase("Tied Ranks", [10.0] * 5, [1.0] * 5, "High"),
    KayentaCase("Tied Ranks With Zeros", [10.0] * 5, [0.0] * 5, "High"),
    KayentaCase(
        "Zero Mean: High Metric with Effect Size",
        NEAR_55,
        [0.0] * 5,
        "High",
        options={"effect_size_thresholds": (0.8, 1.2)},
    ),
    KayentaCase(
        "Zero Mean: Low Metric with Effect Size",
        [0.0] * 5,
        NEAR_55,
        "Low",
        options={"effect_size_thresholds": (0.8, 1.2)},
    ),
    KayentaCase(
        "Zero Mean: Critical Metric",
        ZERO_MEAN_CRITICAL_EXP,
        [0.0] * 10,
        "High",
        critical=True,
        options={"critical_thresholds": (0.8, 1.2), "nan_strategy": "replace", "is_critical": True},
    ),
    KayentaCase(
        "Zero Mean: Pass Metric",
        [0.0] * 5,
        [0.0] * 5,
        "Pass",
        options={"effect_size_thresholds": (0.8, 1.2)},
    ),
]


@pytest.mark.parametrize("case", KAYENTA_CASES, ids=[c.name for c in KAYENTA_CASES])
def test_kayenta_classifier_suite(case: KayentaCase) -> None:
    # the suite builds its classifiers with tolerance 0.10 and confLevel 0.95 unless it says so
    options: dict[str, Any] = {"tolerance": 0.10, "conf_level": 0.95, **case.options}
    result = classify(case.control, case.experiment, direction=case.direction, **options)
    assert result.label == case.label, result.reason
    if case.critical is not None:
        assert result.critical is case.critical


def test_kayenta_missing_data_has_a_reason() -> None:
    # ClassifierSuite.scala "Mann-Whitney Missing Data: Reason String"
    result = classify([], [], direction="decrease", is_critical=True, tolerance=0.1)
    assert result.label == "Nodata" and result.reason


def test_kayenta_effect_size_is_nan_when_a_mean_is_zero_and_1_when_identical() -> None:
    # ClassifierSuite.scala "Zero Mean: ..." assert `result.deviation.isNaN` / `== 1.0`
    options: dict[str, Any] = {"tolerance": 0.1, "conf_level": 0.95}
    assert math.isnan(classify([0.0] * 5, NEAR_55, **options).effect_size)
    assert math.isnan(classify(NEAR_55, [0.0] * 5, **options).effect_size)
    assert classify([0.0] * 5, [0.0] * 5, **options).effect_size == 1.0


def test_kayenta_mann_whitney_interval() -> None:
    # spinnaker/kayenta kayenta-mannwhitney/.../MannWhitneySuite.scala "returns expected values"
    result = mann_whitney_interval([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0], 0.95)
    assert (result.low, result.high, result.estimate) == pytest.approx((6.0, 39.0, 22.5))


@pytest.mark.parametrize(
    ("values", "factor", "reduce", "outliers"),
    [
        # spinnaker/kayenta kayenta-judge/src/test/scala/.../judge/DetectorSuite.scala
        ([21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0], 1.5, False, [50.0]),  # IQR Detection
        ([1.0, 1.0, 1.0, 5.0, -1.0, -1.0, -1.0, -5.0], 1.5, False, [5.0, -5.0]),  # Two Sided
        ([1.0] * 5 + [20.0] + [1.0] * 5, 3.0, True, []),  # IQR Reduce Sensitivity
        ([], 1.5, False, []),  # IQR Empty Data
    ],
)
def test_kayenta_iqr_detector(
    values: list[float], factor: float, reduce: bool, outliers: list[float]
) -> None:
    array = np.array(values)
    kept = remove_outliers(array, factor, reduce_sensitivity=reduce)
    assert sorted(set(values) - set(kept.tolist())) == sorted(outliers)
