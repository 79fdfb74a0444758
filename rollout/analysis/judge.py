"""The judge: looks and a policy -> per-metric Comparisons -> a look's Verdict.

Every test is anytime-valid (see `sequential.py` for the arguments), so the judge may run
after every look and the false-rollback rate over the whole rollout stays at the policy's
alpha, split evenly (Bonferroni) over the active tests: errors, latency, each SLO guard and
each custom-metric rule. `judge_next` folds one look into an `Analysis` (constant cost per
look); `judge` folds a whole history (the gate, tests).

A look's verdict says what is known so far: FAIL as soon as a test shows a regression (even
below the minimum sample); otherwise NO_DATA when the latest look lacks a required number;
otherwise INCONCLUSIVE below `policy.min_requests` per version; otherwise NO_REGRESSION:
"no regression shown yet", never a pass. `Judgement.ready` is what lets a step advance (and
the gate pass): NO_REGRESSION, and no metric whose evidence leans toward a regression (its
point estimate beyond the tolerance while its e-value is at least 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rollout.analysis import sequential as seq
from rollout.analysis import stats
from rollout.analysis.accumulate import (
    TAILS_SHARE,
    Analysis,
    accumulate,
    active_tests,
    window_alpha,
)
from rollout.analysis.guards import custom_rule, e_value, missing_data, slo_errors, slo_latency
from rollout.analysis.judge_text import ms, overall_reason, pct, signed_pct
from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.spec import Policy


def judge(history: Sequence[Observation], policy: Policy, *, details: bool = True) -> Judgement:
    """Judge the candidate against the baseline over every look so far."""
    if not history:
        return Judgement(Verdict.NO_DATA, (), None, "no look at the metrics yet")
    if policy.judge.kind == "kayenta":
        from rollout.analysis.kayenta import judge_kayenta  # kayenta imports this module

        return judge_kayenta(history, policy, details=details)
    analysis: Analysis | None = None
    for observation in history:
        analysis = accumulate(analysis, observation, policy)
    assert analysis is not None
    return evaluate(analysis, history[-1], policy)


def judge_next(
    analysis: Analysis | None, history: Sequence[Observation], policy: Policy
) -> tuple[Analysis | None, Judgement]:
    """Fold the newest look (`history[-1]`) into `analysis` and judge; the Kayenta judge has
    no running state and reads the whole history."""
    if policy.judge.kind == "kayenta":
        return None, judge(history, policy)
    analysis = accumulate(analysis, history[-1], policy)
    return analysis, evaluate(analysis, history[-1], policy)


def evaluate(analysis: Analysis, latest: Observation, policy: Policy) -> Judgement:
    tests = active_tests(policy)
    alpha = policy.alpha / len(tests)
    comparisons = [_run(name, analysis, latest, policy, alpha) for name in tests]
    comparisons = [_gate_sample(c, analysis, policy) for c in comparisons]
    return combine(comparisons, policy, analysis.looks)


def _run(
    name: str, analysis: Analysis, latest: Observation, policy: Policy, alpha: float
) -> Comparison:
    if name == "error_rate":
        return _errors(analysis, latest, policy, alpha)
    if name == "latency_p95":
        return _latency(analysis, latest, policy, alpha)
    if name == "slo:error_rate":
        return slo_errors(analysis, latest, policy, alpha)
    if name == "slo:latency_p95":
        return slo_latency(analysis, latest, policy, alpha)
    return custom_rule(name, analysis, latest, policy, alpha)


def _gate_sample(comparison: Comparison, analysis: Analysis, policy: Policy) -> Comparison:
    """Below the minimum sample "no regression yet" becomes INCONCLUSIVE (a FAIL stands)."""
    if comparison.verdict is not Verdict.NO_REGRESSION:
        return comparison
    base_n, cand_n = analysis.baseline.requests, analysis.candidate.requests
    if min(base_n, cand_n) >= policy.min_requests:
        return comparison
    short = "candidate" if cand_n < base_n else "baseline"
    have = int(min(base_n, cand_n))
    reason = (
        f"too little data: {short} has {have} of the {policy.min_requests} requests "
        f"needed before a step may pass; {comparison.reason}"
    )
    return replace(comparison, verdict=Verdict.INCONCLUSIVE, reason=reason)


# ------------------------------------------------------------------ errors


def _errors(analysis: Analysis, latest: Observation, policy: Policy, alpha: float) -> Comparison:
    name = "error_rate"
    base, cand = analysis.baseline, analysis.candidate
    missing = [
        (role, "requests")
        for role, counts in (("baseline", latest.baseline), ("candidate", latest.candidate))
        if counts.requests is None
    ]
    rhos = seq.rho_grid(policy)
    up = np.asarray(analysis.errors_up) if analysis.errors_up else None
    now = seq.mixture_log_e(up[seq.rho_index(policy)]) if up is not None else 0.0
    peak = analysis.peak(name)
    e, p = e_value(peak)
    threshold = 1.0 / alpha
    confidence = 1.0 - alpha
    interval = None
    if up is not None:
        interval = seq.ratio_interval(
            up, np.asarray(analysis.errors_down), rhos, math.log(threshold)
        )
    rate_b = base.errors / base.requests if base.requests > 0 else None
    rate_c = cand.errors / cand.requests if cand.requests > 0 else None
    ratio = rate_c / rate_b if rate_b and rate_c is not None else None
    null = 1.0 + policy.errors.max_increase
    change = _rate_change(rate_b, rate_c, ratio, interval, confidence)
    allowed = f"+{policy.errors.max_increase:.0%}"
    if e >= threshold:
        verdict = Verdict.FAIL
        reason = (
            f"candidate error rate {change} exceeds the allowed {allowed}: "
            f"e-value {e:.3g} >= {threshold:.3g}"
        )
    elif missing:
        return missing_data(name, latest, missing)
    else:
        verdict = Verdict.NO_REGRESSION
        reason = f"error rate {change}: no rise beyond {allowed} shown yet (e-value {e:.3g})"
        no_error_series = [
            role
            for role, counts in (("baseline", latest.baseline), ("candidate", latest.candidate))
            if counts.errors is None
        ]
        if no_error_series:
            reason += f"; no error series for {' and '.join(no_error_series)}, counted as 0"
    leaning = now >= 0.0 and rate_c is not None and rate_b is not None and rate_c > null * rate_b
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=rate_b,
        candidate=rate_c,
        effect=ratio,
        effect_name="error_rate_ratio",
        interval=interval,
        confidence=confidence if interval else None,
        test=(
            "mixture SPRT on the conditional binomial (candidate's share of errors); "
            "the interval is its confidence sequence"
        ),
        statistic=now,
        p_value=p,
        e_value=e,
        threshold=threshold,
        baseline_n=int(base.requests),
        candidate_n=int(cand.requests),
        reason=reason,
        leaning=leaning,
        details=(
            ("rate_ratio_null", null),
            ("baseline_errors", base.errors),
            ("candidate_errors", cand.errors),
            ("looks", float(analysis.looks)),
            ("alpha", alpha),
        ),
    )


def _rate_change(
    rate_b: float | None,
    rate_c: float | None,
    ratio: float | None,
    interval: tuple[float, float] | None,
    confidence: float,
) -> str:
    text = f"{pct(rate_c)} vs baseline {pct(rate_b)}"
    if ratio is not None:
        text += f" (x{ratio:.2f}"
        if interval:
            low, high = _ratio_text(interval[0]), _ratio_text(interval[1])
            text += f", {percent(confidence)} CS {low}-{high}"
        text += ")"
    return text


def percent(confidence: float) -> str:
    """99.5%, 99.75%: a confidence level with the digits it has."""
    return f"{confidence * 100:.4g}%"


def _ratio_text(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


# ------------------------------------------------------------------ latency


def _latency(analysis: Analysis, latest: Observation, policy: Policy, alpha: float) -> Comparison:
    name = "latency_p95"
    q, r = policy.latency.quantile, policy.latency.max_regression
    if not analysis.les or not analysis.baseline.buckets:
        reason = analysis.latency_missing or "no latency histogram yet"
        return missing_data(name, latest, [("both versions", "latency")], reason)
    les = np.asarray(analysis.les)
    base_total = np.asarray(analysis.baseline.buckets)
    cand_total = np.asarray(analysis.candidate.buckets)
    p_b = stats.histogram_quantile(q, les, base_total)
    p_c = stats.histogram_quantile(q, les, cand_total)
    ratio = p_c / p_b if math.isfinite(p_b) and p_b > 0 and math.isfinite(p_c) else None
    w_alpha = window_alpha(policy)
    interval = (analysis.ratio_low, analysis.ratio_high)
    confidence = 1.0 - 4.0 * w_alpha  # both versions' windows, both sides
    llr = np.asarray(analysis.latency_llr) if analysis.latency_llr else np.zeros((0, 1))
    now = seq.window_log_e(llr, analysis.window, les)
    e, p = e_value(analysis.peak(name))
    threshold = 1.0 / (alpha * TAILS_SHARE)
    window = analysis.window
    resolution = window.resolution
    level = round(q * 100)
    change = _p95_change(p_b, p_c, ratio, interval, confidence, level)
    if e >= threshold:
        verdict = Verdict.FAIL
        reason = f"{change} exceeds the allowed +{r:.0%}: e-value {e:.3g} >= {threshold:.3g}"
    elif interval[0] > 1.0 + r:
        verdict = Verdict.FAIL
        reason = (
            f"{change} exceeds the allowed +{r:.0%}: the candidate's P{level} is shown to be "
            f"at least x{interval[0]:.2f} the baseline's"
        )
    elif analysis.latency_missing:
        roles = [
            (role, "latency")
            for role, counts in (("baseline", latest.baseline), ("candidate", latest.candidate))
            if counts.buckets is None
        ]
        return missing_data(
            name, latest, roles or [("a version", "latency")], analysis.latency_missing
        )
    else:
        verdict = Verdict.NO_REGRESSION
        reason = f"{change}: no regression beyond +{r:.0%} shown yet (e-value {e:.3g})"
    reason += "; " + resolution_text(window, les, r, level)
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=p_b if math.isfinite(p_b) else None,
        candidate=p_c if math.isfinite(p_c) else None,
        effect=ratio,
        effect_name="p95_ratio",
        interval=interval,
        confidence=confidence,
        test=(
            "mixture SPRT on matched tails at exact bucket bounds: the candidate's share of "
            "requests above a bound >= (1+r) x the baseline's P95 vs the baseline's above a "
            "bound below it; the interval is a confidence sequence from both versions' buckets"
        ),
        statistic=now,
        p_value=p,
        e_value=e,
        threshold=threshold,
        baseline_n=int(base_total[-1]),
        candidate_n=int(cand_total[-1]),
        reason=reason,
        leaning=ratio is not None and ratio > 1.0 + r and _estimate_log_e(llr, les, p_b) >= 0.0,
        details=(
            ("quantile", q),
            ("baseline_p95_above_s", window.lower),
            ("baseline_p95_at_most_s", window.upper),
            ("candidate_compared_above_s", window.candidate_above),
            ("resolution", resolution),
            ("looks", float(analysis.looks)),
            ("alpha", alpha),
        ),
    )


def resolution_warning(observation: Observation, policy: Policy) -> str | None:
    """Before a rollout: can the baseline's buckets show the policy's regression at all?

    From the bucket holding the baseline's current P{q} (l, u]: the candidate is compared
    above the smallest bound c >= (1+r) u, so regressions under c / l - 1 cannot be shown.
    A warning (never a refusal) when that is beyond twice the policy's tolerance."""
    buckets = observation.baseline.buckets
    r = policy.latency.max_regression
    if not buckets or len(buckets) < 3 or not math.isinf(buckets[-1].le):
        return None
    les = np.array([b.le for b in buckets])
    counts = np.maximum.accumulate(np.array([float(b.count) for b in buckets]))
    p_b = stats.histogram_quantile(policy.latency.quantile, les, counts)
    k = int(np.searchsorted(les, p_b)) if math.isfinite(p_b) else -1
    if not 0 < k < les.size - 1:
        return None
    lower, upper = float(les[k - 1]), float(les[k])
    above = seq.bound_at_least((1.0 + r) * upper, les)
    level = round(policy.latency.quantile * 100)
    where = f"the baseline's P{level} ({ms(p_b)}) lies in the bucket ({ms(lower)}, {ms(upper)}]"
    fix = (
        "add bucket bounds every 2-5% from about the P95 to 1.3x it (the instrumentation "
        "kit's rollout.instrument.metrics.LATENCY_BUCKETS do so around 150 ms)"
    )
    if not math.isfinite(above):
        reach = ms((1 + r) * upper)
        return f"{where} and no bound reaches {reach}: no latency regression can be shown; {fix}"
    resolution = above / lower - 1.0
    if resolution <= 2 * r:
        return None
    return (
        f"{where}; the candidate is compared above {ms(above)}, so P{level} regressions under "
        f"{signed_pct(resolution)} cannot be shown (the policy allows +{r:.0%}); {fix}"
    )


def _estimate_log_e(llr: np.ndarray, les: np.ndarray, p_b: float) -> float:
    """The matched-tail log e-value for the bucket holding the baseline's estimated P95: the
    evidence as it leans, without the window's caution (for holding a step, never failing)."""
    k = int(np.searchsorted(les, p_b)) - 1 if math.isfinite(p_b) else -1
    if not 0 <= k < llr.shape[0]:
        return 0.0
    return seq.mixture_log_e(llr[k])


def resolution_text(window: seq.Window, les: np.ndarray, r: float, level: int) -> str:
    """What the buckets can show, in words: the report says it, never guesses past it."""
    if not math.isfinite(window.lower) or not math.isfinite(window.upper):
        return f"the buckets do not place the baseline's P{level} yet"
    if not math.isfinite(window.candidate_above):
        return (
            f"no bucket bound at or above {ms((1 + r) * window.upper)}: no regression can be "
            "shown with these buckets; add bounds above the P95"
        )
    text = (
        f"baseline P{level} in ({ms(window.lower)}, {ms(window.upper)}], candidate compared "
        f"above {ms(window.candidate_above)}: regressions under {signed_pct(window.resolution)} "
        "cannot be shown with these buckets"
    )
    if window.resolution > 2 * r:
        text += (
            " (add bounds every 2-5% around the P95, e.g. the instrumentation kit's)"
            if _coarse(window, les)
            else " (the window narrows as data comes in)"
        )
    return text


def _coarse(window: seq.Window, les: np.ndarray) -> bool:
    """Buckets wider than 5% where the baseline's P95 may lie."""
    inside = les[(les >= window.lower) & (les <= window.upper)]
    return inside.size < 2 or bool(np.max(inside[1:] / inside[:-1]) > 1.05)


def _p95_change(
    p_b: float,
    p_c: float,
    ratio: float | None,
    interval: tuple[float, float],
    confidence: float,
    level: int,
) -> str:
    text = f"candidate P{level} {ms(p_c)} vs baseline {ms(p_b)}"
    if ratio is not None:
        low, high = interval
        text += f" (x{ratio:.2f}, {signed_pct(ratio - 1.0)}"
        text += f", {percent(confidence)} CS {low:.2f}-{_ratio_text(high)})"
    return text


# ------------------------------------------------------------------ overall


def combine(comparisons: list[Comparison], policy: Policy, looks: int) -> Judgement:
    """FAIL if any FAILs; else NO_DATA if any lacks data; else INCONCLUSIVE; else NO_REGRESSION,
    ready unless a metric leans toward a regression."""
    for verdict in (Verdict.FAIL, Verdict.NO_DATA, Verdict.INCONCLUSIVE):
        hits = [c for c in comparisons if c.verdict is verdict]
        if hits:
            decider = max(hits, key=lambda c: (c.e_value or 0.0) / (c.threshold or 1.0))
            return Judgement(verdict, tuple(comparisons), decider.metric, decider.reason)
    leaning = [c for c in comparisons if c.leaning]
    if leaning:
        names = ", ".join(c.metric for c in leaning)
        reason = (
            f"no regression shown yet, but the evidence leans toward one ({names}: the estimate "
            f"is beyond the tolerance and the e-value above 1): holding; {leaning[0].reason}"
        )
        return Judgement(Verdict.NO_REGRESSION, tuple(comparisons), leaning[0].metric, reason)
    reason = overall_reason(comparisons, policy.alpha, looks)
    return Judgement(Verdict.NO_REGRESSION, tuple(comparisons), None, reason, ready=True)
