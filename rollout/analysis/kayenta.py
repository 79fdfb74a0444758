"""Kayenta compatibility: the NetflixACAJudge's Mann-Whitney metric classifier and
its weighted group score, for teams leaving Spinnaker.

Re-expressed from Kayenta's MannWhitneyClassifier, EffectSizes and IQRDetector
(spinnaker/kayenta, kayenta-judge), and checked against the cases of its own test suite
(tests/analysis/test_kayenta.py). The experiment is compared to the control with a
two-sample Wilcoxon (Mann-Whitney) test; the confidence interval of the location shift
and the Hodges-Lehmann estimate are R's `wilcox.test(conf.int=TRUE)` with the normal
approximation, tie and continuity correction, interval ends clamped to the range of the
pairwise differences. A metric is High when the interval's lower end lies above
`tolerance` x |estimate| and the effect size reaches the allowed increase; Low
symmetrically. Thresholds are pairs (allowed decrease, allowed increase); a critical
metric is critical when it is High (Low) and its effect size also reaches the critical
increase (decrease). The effect size is the mean ratio experiment/control, or with
`effect_measure="cles"` P(E > C) + P(E = C) / 2. As in Kayenta, the mean ratio is NaN
when either mean is 0 (a zero-mean control against ~55 is High), and a NaN effect size
skips the effect-size and critical-threshold checks. Empty samples are Nodata (critical
for a critical metric; NodataFailMetric when data is required), or Pass when NaNs are
replaced; identical samples, or a single value in both, Pass with effect size 1.

The shift statistic is a step function that changes only at the pairwise differences,
so its roots are found exactly among them, not by a numerical search. Where an interval
end sits on a jump (common with ties, e.g. mostly-zero samples whose estimate is 0), the
shift at the jump is itself still rejected; an end equal to the allowed bound then counts
as beyond it when the test at that shift rejects. R's and Kayenta's searches land within
1e-4 of the jump on either side, and on Kayenta's own mostly-zero case this reads High,
as Kayenta does. Cost: the pairwise differences are held in memory (n x m values).

Deliberate differences: where Kayenta adds random noise to two constant samples, we stay
deterministic (the samples are then completely separated, the interval is the
difference itself). Outlier removal is Kayenta's IQR detector (factor 3, fences widened
to the 1st/99th percentiles, so fewer than 99 values lose none) but only when asked
(`outlier_strategy="remove"`); `judge_kayenta` keeps every value.
This judge is not anytime-valid; it is here for compatibility, not as the default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from rollout.analysis import stats
from rollout.analysis.history import HistoryArrays, history_arrays
from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.spec import Direction, KayentaJudge, Policy

FloatArray = NDArray[np.float64]
Label = Literal["Pass", "High", "Low", "Nodata", "NodataFailMetric"]
IQR_FACTOR = 3.0  # the NetflixACAJudge's outlier fence


@dataclass(frozen=True)
class MannWhitneyInterval:
    estimate: float  # Hodges-Lehmann shift, experiment - control
    low: float
    high: float
    u: float  # experiment's U statistic
    p_value: float  # two-sided, normal approximation with tie and continuity correction


@dataclass(frozen=True)
class KayentaClassification:
    label: Label
    critical: bool
    reason: str
    p_value: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    estimate: float | None = None  # Hodges-Lehmann
    effect_size: float = 1.0
    control_mean: float | None = None
    experiment_mean: float | None = None
    u: float | None = None
    control_n: int = 0
    experiment_n: int = 0


def _ranked_shift_z(x: FloatArray, y: FloatArray, shift: float, zq: float) -> float:
    """R's `wdiff`: standardised rank sum of x - shift against y, minus zq."""
    shifted = x - shift
    ranks = sps.rankdata(np.concatenate((shifted, y)))
    nx, ny = float(x.size), float(y.size)
    dz = float(ranks[: x.size].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    _, ties = np.unique(np.concatenate((shifted, y)), return_counts=True)
    n = nx + ny
    sigma2 = nx * ny / 12 * ((n + 1) - float(np.sum(ties**3 - ties)) / (n * (n - 1)))
    if sigma2 <= 0:
        return -zq  # every observation tied: no evidence either way
    return (dz - math.copysign(0.5, dz) * (dz != 0)) / math.sqrt(sigma2) - zq


def _root(x: FloatArray, y: FloatArray, zq: float, jumps: FloatArray) -> float:
    """Where the non-increasing step function `wdiff` crosses 0 (R's uniroot, exactly).

    `wdiff` only changes at the pairwise differences x_i - y_j (`jumps`, sorted, unique), so
    the crossing is found by bisection over them rather than over the reals: it is either
    a difference itself (a jump across 0, the usual case with ties) or, when the continuity
    correction makes `wdiff` exactly 0 on a stretch, the middle of that stretch (R returns
    wherever its search lands in it). As in R, an interval end that the data cannot reach
    is clamped to the smallest or largest difference.
    """

    def g(d: float) -> float:
        return _ranked_shift_z(x, y, d, zq)

    lo, hi = float(jumps[0]), float(jumps[-1])
    if g(lo) <= 0:
        return lo
    if g(hi) >= 0:
        return hi

    def last(positive: bool) -> int:
        """The last jump where g > 0 (positive) or g >= 0 (not positive)."""
        i, j = 0, jumps.size - 1  # the condition holds at i, not at j
        while j - i > 1:
            m = (i + j) // 2
            value = g(float(jumps[m]))
            i, j = (m, j) if (value > 0 if positive else value >= 0) else (i, m)
        return i

    i, k = last(True), last(False) + 1  # g > 0 up to jumps[i], g < 0 from jumps[k]
    a, b = float(jumps[i]), float(jumps[k])
    if k == i + 1:  # one gap between a jump above 0 and one below
        gap = g((a + b) / 2)
        return b if gap > 0 else a if gap < 0 else (a + b) / 2
    # g is 0 at jumps[i + 1 .. k - 1], and perhaps on the gaps either side
    left = a if g((a + float(jumps[i + 1])) / 2) == 0 else float(jumps[i + 1])
    right = b if g((float(jumps[k - 1]) + b) / 2) == 0 else float(jumps[k - 1])
    return (left + right) / 2


def mann_whitney_interval(
    control: ArrayLike, experiment: ArrayLike, conf_level: float
) -> MannWhitneyInterval:
    """Shift of experiment over control: estimate, interval, U and two-sided p."""
    y = np.asarray(control, dtype=np.float64)
    x = np.asarray(experiment, dtype=np.float64)
    jumps = np.unique(np.subtract.outer(x, y))
    z = _z_quantile(conf_level)
    estimate = _root(x, y, 0.0, jumps)
    ranks = sps.rankdata(np.concatenate((x, y)))
    u = float(ranks[: x.size].sum()) - x.size * (x.size + 1) / 2
    stat = _ranked_shift_z(x, y, 0.0, 0.0)
    return MannWhitneyInterval(
        estimate=estimate,
        low=_root(x, y, z, jumps),
        high=_root(x, y, -z, jumps),
        u=u,
        p_value=float(min(1.0, 2 * sps.norm.sf(abs(stat)))),
    )


def _z_quantile(conf_level: float) -> float:
    return float(sps.norm.ppf(1 - (1 - conf_level) / 2))


def _percentile(values: FloatArray, p: float) -> float:
    """Commons Math's default (legacy) percentile, as Kayenta's detector uses: position
    p (n + 1) / 100 in the sorted values, linear between neighbours, clamped at both ends."""
    ordered = np.sort(values)
    position = p * (ordered.size + 1) / 100
    if position < 1:
        return float(ordered[0])
    if position >= ordered.size:
        return float(ordered[-1])
    below = math.floor(position)
    low, high = float(ordered[below - 1]), float(ordered[below])
    return low + (position - below) * (high - low)


def remove_outliers(
    values: FloatArray, factor: float = IQR_FACTOR, *, reduce_sensitivity: bool = True
) -> FloatArray:
    """Kayenta's IQRDetector: drop values outside [Q1 - f IQR, Q3 + f IQR] (Commons Math
    quartiles); with `reduce_sensitivity` (the NetflixACAJudge's setting) the fences are
    widened to at least the 1st and 99th percentiles, so fewer than 99 values lose none."""
    if values.size == 0:
        return values
    q1, q3 = _percentile(values, 25), _percentile(values, 75)
    lower, upper = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
    if reduce_sensitivity:
        lower = min(lower, _percentile(values, 1))
        upper = max(upper, _percentile(values, 99))
    kept: FloatArray = values[(values >= lower) & (values <= upper)]
    return kept


def _prepare(values: ArrayLike, nan_strategy: str, outlier_strategy: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if nan_strategy == "remove":
        array = array[np.isfinite(array)]
    elif nan_strategy == "replace":
        array = np.where(np.isfinite(array), array, 0.0)
    else:
        raise ValueError(f"nan_strategy must be 'remove' or 'replace', not {nan_strategy!r}")
    if outlier_strategy == "remove":
        return remove_outliers(array)
    if outlier_strategy != "keep":
        raise ValueError(f"outlier_strategy must be 'keep' or 'remove', not {outlier_strategy!r}")
    return array


def _effect_size(control: FloatArray, experiment: FloatArray, measure: str) -> float:
    """Kayenta's EffectSizes: the mean ratio (NaN when either mean is 0, so the effect-size
    checks are skipped) or the common-language effect size P(E > C) + P(E = C) / 2."""
    if measure == "meanRatio":
        mean_c, mean_e = float(control.mean()), float(experiment.mean())
        return math.nan if mean_c == 0 or mean_e == 0 else mean_e / mean_c
    if measure == "cles":
        greater = (experiment[:, None] > control[None, :]).mean()
        ties = (experiment[:, None] == control[None, :]).mean()
        return float(greater + 0.5 * ties)
    raise ValueError(f"effect_measure must be 'meanRatio' or 'cles', not {measure!r}")


def _beyond(x: FloatArray, y: FloatArray, end: float, bound: float, zq: float, sign: float) -> bool:
    """Whether the interval end `end` lies beyond `bound` (above for sign +1, below for -1).

    An end found at a jump of `wdiff` is the limit of an open side: the shift at the jump is
    itself still rejected. So when the end equals the bound exactly, the bound is beyond the
    interval when the test at that shift still rejects (its `wdiff` has the outer sign).
    """
    if sign * (end - bound) > 0:
        return True
    return end == bound and sign * _ranked_shift_z(x, y, bound, sign * zq) > 0


def classify(
    control: ArrayLike,
    experiment: ArrayLike,
    *,
    direction: str = "either",
    tolerance: float = 0.25,
    conf_level: float = 0.98,
    effect_measure: str = "meanRatio",
    effect_size_thresholds: tuple[float, float] = (1.0, 1.0),
    critical_thresholds: tuple[float, float] = (1.0, 1.0),
    is_critical: bool = False,
    nan_strategy: str = "remove",
    outlier_strategy: str = "keep",
    data_required: bool = False,
) -> KayentaClassification:
    """Classify one metric as Kayenta's MannWhitneyClassifier does.

    `direction`: "increase", "decrease" or "either" (which changes may fail).
    """
    if direction not in ("increase", "decrease", "either"):
        raise ValueError(f"direction must be increase, decrease or either, not {direction!r}")
    y = _prepare(control, nan_strategy, outlier_strategy)
    x = _prepare(experiment, nan_strategy, outlier_strategy)
    n_c, n_e = int(y.size), int(x.size)
    if x.size == 0 or y.size == 0:
        if nan_strategy != "remove":
            return KayentaClassification(
                "Pass", False, "no data (NaNs replaced)", control_n=n_c, experiment_n=n_e
            )
        if data_required and not is_critical:
            return KayentaClassification(
                "NodataFailMetric", False, "missing data", control_n=n_c, experiment_n=n_e
            )
        return KayentaClassification(
            "Nodata", is_critical, "missing data", control_n=n_c, experiment_n=n_e
        )
    mean_c, mean_e = float(y.mean()), float(x.mean())
    if np.array_equal(np.sort(x), np.sort(y)):
        reason = "the experiment and control data are identical"
        return KayentaClassification(
            "Pass",
            False,
            reason,
            control_mean=mean_c,
            experiment_mean=mean_e,
            control_n=n_c,
            experiment_n=n_e,
        )
    if np.unique(np.concatenate((x, y))).size == 1:
        return KayentaClassification(
            "Pass",
            False,
            "a single value",
            control_mean=mean_c,
            experiment_mean=mean_e,
            control_n=n_c,
            experiment_n=n_e,
        )
    mw = mann_whitney_interval(y, x, conf_level)
    effect = _effect_size(y, x, effect_measure)
    allowed = tolerance * abs(mw.estimate)
    zq = _z_quantile(conf_level)
    # Kayenta's rule: the interval clears +/- tolerance x |estimate|, and the effect size
    # reaches its threshold; an effect size that cannot be computed (NaN) is not checked.
    known = not math.isnan(effect)
    label: Label = "Pass"
    if (
        direction in ("increase", "either")
        and _beyond(x, y, mw.low, allowed, zq, 1.0)
        and (not known or effect >= effect_size_thresholds[1])
    ):
        label = "High"
    elif (
        direction in ("decrease", "either")
        and _beyond(x, y, mw.high, -allowed, zq, -1.0)
        and (not known or effect <= effect_size_thresholds[0])
    ):
        label = "Low"
    critical = is_critical and (
        (label == "High" and (not known or effect >= critical_thresholds[1]))
        or (label == "Low" and (not known or effect <= critical_thresholds[0]))
    )
    effect_text = f"{effect:.3g}" if known else "not computable (a mean is 0), not checked"
    reason = (
        f"shift {mw.estimate:.4g} ({conf_level:.0%} CI {mw.low:.4g} to {mw.high:.4g}) "
        f"against +/-{allowed:.4g} allowed, effect size {effect_text}: {label}"
    )
    return KayentaClassification(
        label=label,
        critical=critical,
        reason=reason,
        p_value=mw.p_value,
        ci_lower=mw.low,
        ci_upper=mw.high,
        estimate=mw.estimate,
        effect_size=effect,
        u=mw.u,
        control_mean=mean_c,
        experiment_mean=mean_e,
        control_n=n_c,
        experiment_n=n_e,
    )


# ------------------------------------------------------------------ the score


def group_score(labels: Sequence[str]) -> float | None:
    """100 x Pass / (Pass + High + Low); None when the group has no data."""
    judged = [label for label in labels if label in ("Pass", "High", "Low")]
    if not judged:
        return None
    return 100.0 * judged.count("Pass") / len(judged)


def summary_score(groups: dict[str, float | None], weights: dict[str, float]) -> float:
    """Weighted sum; groups without a weight share what the weights leave of 100."""
    unweighted = [g for g in groups if g not in weights]
    spare = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    return sum(
        score * weights.get(name, spare) / 100.0
        for name, score in groups.items()
        if score is not None
    )


def judge_kayenta(
    history: Sequence[Observation], policy: Policy, *, details: bool = True
) -> Judgement:
    """NetflixACAJudge over per-interval values: P95 and error rate per version, and
    each custom metric; groups "latency", "errors", "custom"."""
    config = policy.judge
    assert isinstance(config, KayentaJudge)
    arrays = history_arrays(history)
    q = policy.latency.quantile
    metrics: list[tuple[str, str, FloatArray, FloatArray, str]] = []
    if arrays.les.size >= 2:
        per_look = [
            np.array(
                [
                    stats.histogram_quantile(q, arrays.les, row) if ok else math.nan
                    for row, ok in zip(series.buckets, series.has_buckets, strict=True)
                ]
            )
            for series in (arrays.baseline, arrays.candidate)
        ]
        metrics.append(("latency_p95", "latency", per_look[0], per_look[1], "increase"))
    rates = [
        np.divide(s.errors, s.requests, out=np.full(s.requests.shape, np.nan), where=s.requests > 0)
        for s in (arrays.baseline, arrays.candidate)
    ]
    metrics.append(("error_rate", "errors", rates[0], rates[1], "increase"))
    for metric in policy.custom_metrics:
        values = np.array(
            [
                [
                    math.nan if v is None else v
                    for v in next(
                        ((c.baseline, c.candidate) for c in obs.custom if c.name == metric.name),
                        (None, None),
                    )
                ]
                for obs in history
            ],
            dtype=np.float64,
        ).reshape(-1, 2)
        bad = "increase" if metric.direction is Direction.INCREASE_IS_BAD else "decrease"
        metrics.append((f"custom:{metric.name}", "custom", values[:, 0], values[:, 1], bad))
    comparisons: list[Comparison] = []
    labels: dict[str, list[str]] = {}
    critical = False
    for name, group, base, cand, direction in metrics:
        result = classify(
            base,
            cand,
            direction=direction,
            tolerance=config.tolerance,
            conf_level=config.confidence_level,
        )
        labels.setdefault(group, []).append(result.label)
        critical = critical or result.critical
        comparisons.append(_comparison(name, result, config.confidence_level))
    groups = {name: group_score(group_labels) for name, group_labels in labels.items()}
    score = 0.0 if critical else summary_score(groups, dict(config.group_weights))
    return _verdict(comparisons, groups, score, config, arrays, policy)


def _comparison(name: str, result: KayentaClassification, conf_level: float) -> Comparison:
    verdict = {
        "Pass": Verdict.NO_REGRESSION,
        "High": Verdict.FAIL,
        "Low": Verdict.FAIL,
        "Nodata": Verdict.NO_DATA,
        "NodataFailMetric": Verdict.NO_DATA,
    }[result.label]
    has_ci = result.ci_lower is not None and result.ci_upper is not None
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=result.control_mean,
        candidate=result.experiment_mean,
        effect=None if math.isnan(result.effect_size) else result.effect_size,
        effect_name="mean_ratio",
        interval=(result.ci_lower, result.ci_upper) if has_ci else None,  # type: ignore[arg-type]
        confidence=conf_level if has_ci else None,
        test="Mann-Whitney over per-interval values (Kayenta NetflixACAJudge)",
        statistic=result.estimate,
        p_value=result.p_value,
        baseline_n=result.control_n,
        candidate_n=result.experiment_n,
        reason=f"{name}: {result.reason}",
        details=(("critical", float(result.critical)),),
    )


def _verdict(
    comparisons: list[Comparison],
    groups: dict[str, float | None],
    score: float,
    config: KayentaJudge,
    arrays: HistoryArrays,
    policy: Policy,
) -> Judgement:
    """Kayenta's score classes: >= pass PASS, >= marginal INCONCLUSIVE, else FAIL."""
    group_text = ", ".join(
        f"{name} {'no data' if value is None else f'{value:.0f}'}" for name, value in groups.items()
    )
    labels = ", ".join(f"{c.metric} {c.verdict.value}" for c in comparisons)
    low_sample = min(arrays.baseline.total_requests, arrays.candidate.total_requests)
    if all(value is None for value in groups.values()):
        verdict, why = Verdict.NO_DATA, "no metric had data for both versions"
    elif score < config.marginal_score:
        verdict, why = Verdict.FAIL, f"below the marginal score {config.marginal_score:g}"
    elif score < config.pass_score:
        verdict, why = Verdict.INCONCLUSIVE, f"marginal: below the pass score {config.pass_score:g}"
    elif low_sample < policy.min_requests:
        verdict = Verdict.INCONCLUSIVE
        why = f"too little data: {int(low_sample)} of {policy.min_requests} requests per version"
    else:
        verdict, why = Verdict.NO_REGRESSION, f"at or above the pass score {config.pass_score:g}"
    reason = f"Kayenta score {score:.0f} ({group_text}) {why}; {labels}"
    score_comparison = Comparison(
        metric="kayenta:score",
        verdict=verdict,
        baseline=None,
        candidate=None,
        effect=score,
        effect_name="score",
        interval=None,
        confidence=None,
        test="Kayenta NetflixACAJudge weighted group score",
        statistic=score,
        threshold=config.pass_score,
        baseline_n=int(arrays.baseline.total_requests),
        candidate_n=int(arrays.candidate.total_requests),
        reason=reason,
        details=(("marginal_score", config.marginal_score), ("pass_score", config.pass_score)),
    )
    ready = verdict is Verdict.NO_REGRESSION
    return Judgement(verdict, (*comparisons, score_comparison), "kayenta:score", reason, ready)
