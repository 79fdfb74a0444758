"""SLO guards and custom-metric rules of the sequential judge, and shared helpers.

SLO guards: one-sample mixture SPRTs that the candidate's error rate, or its share of requests
above the latency bound, exceeds what the bound allows. The latency guard counts exactly, above
the smallest bucket bound at or above the SLO: never more requests than are truly above it, so
the test stays valid for any latency shape (a bound far above the SLO only costs power).
Custom metrics: a sequential sign test over intervals: under H0 the candidate is worse than
the rule in an interval with probability <= 1/2, so the count of worse intervals is tested as
Bernoulli(1/2).
"""

from __future__ import annotations

import math

import numpy as np

from rollout.analysis import sequential as seq
from rollout.analysis import stats
from rollout.analysis.accumulate import Analysis
from rollout.analysis.judge_text import ms, pct, signed_pct
from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Verdict
from rollout.spec import Direction, Policy

E_CAP = 1e300  # e-values are reported as floats; beyond this they are "certain"


def e_value(log_e: float) -> tuple[float, float]:
    """(e-value, its anytime-valid p-value) from a log e-value (a running maximum)."""
    e = E_CAP if log_e > math.log(E_CAP) else math.exp(log_e)
    return e, min(1.0, 1.0 / e)


def missing_data(
    name: str, latest: Observation, what: list[tuple[str, str]], why: str = ""
) -> Comparison:
    """NO_DATA naming the version, the signal and the query that came back empty."""
    parts = []
    for version, signal in what:
        query = next((q.promql for q in latest.queries if q.signal == signal), None)
        parts.append(f"{version} {signal}" + (f" (query: {query})" if query else ""))
    problems = f"; source reported: {', '.join(latest.problems)}" if latest.problems else ""
    because = f" ({why})" if why else ""
    reason = f"no data for {name} in the latest look{because}: {'; '.join(parts)}{problems}"
    return Comparison(
        metric=name,
        verdict=Verdict.NO_DATA,
        baseline=None,
        candidate=None,
        effect=None,
        effect_name="",
        interval=None,
        confidence=None,
        test="",
        reason=reason,
    )


def slo_errors(analysis: Analysis, latest: Observation, policy: Policy, alpha: float) -> Comparison:
    name, bound = "slo:error_rate", float(policy.slo.max_error_rate or 0.0)
    cand = analysis.candidate
    e, p = e_value(analysis.peak(name))
    rate = cand.errors / cand.requests if cand.requests > 0 else None
    verdict, reason = _guard_verdict(
        e, 1.0 / alpha, f"candidate error rate {pct(rate)}", pct(bound)
    )
    if verdict is not Verdict.FAIL and latest.candidate.requests is None:
        return missing_data(name, latest, [("candidate", "requests")])
    now = float(seq.bernoulli_log_e(cand.errors, cand.requests, bound))
    leaning = now >= 0.0 and rate is not None and rate > bound
    return _guard(name, verdict, rate, bound, now, e, p, alpha, cand.requests, reason, leaning)


def slo_latency(
    analysis: Analysis, latest: Observation, policy: Policy, alpha: float
) -> Comparison:
    name, bound = "slo:latency_p95", float(policy.slo.max_latency_seconds or 0.0)
    q = policy.latency.quantile
    cand = analysis.candidate
    if not analysis.les or not cand.buckets:
        return missing_data(name, latest, [("candidate", "latency")], analysis.latency_missing)
    les, total = np.asarray(analysis.les), np.asarray(cand.buckets)
    p_c = stats.histogram_quantile(q, les, total)
    estimate = p_c if math.isfinite(p_c) else None
    e, p = e_value(analysis.peak(name))
    label = f"candidate P{round(q * 100)} {ms(estimate)}"
    verdict, reason = _guard_verdict(e, 1.0 / alpha, label, ms(bound))
    if verdict is not Verdict.FAIL and (analysis.latency_missing or estimate is None):
        return missing_data(name, latest, [("candidate", "latency")], analysis.latency_missing)
    counted_above = seq.bound_at_least(bound, les)
    if not math.isfinite(counted_above):
        reason += f"; no bucket bound at or above {ms(bound)}: this guard cannot fail"
    elif counted_above > bound:
        reason += f" (requests counted above the bucket bound {ms(counted_above)})"
    now = float(seq.bernoulli_log_e(seq.exceeding(bound, les, total), total[-1], 1.0 - q))
    leaning = now >= 0.0 and estimate is not None and estimate > bound
    return _guard(name, verdict, estimate, bound, now, e, p, alpha, total[-1], reason, leaning)


def _guard_verdict(e: float, threshold: float, label: str, bound: str) -> tuple[Verdict, str]:
    if e >= threshold:
        return Verdict.FAIL, f"{label} exceeds the SLO {bound}: e-value {e:.3g} >= {threshold:.3g}"
    return Verdict.NO_REGRESSION, f"{label}: no breach of the SLO {bound} shown (e-value {e:.3g})"


def _guard(
    name: str,
    verdict: Verdict,
    estimate: float | None,
    bound: float,
    now: float,
    e: float,
    p: float,
    alpha: float,
    n: float,
    reason: str,
    leaning: bool,
) -> Comparison:
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=None,
        candidate=estimate,
        effect=estimate,
        effect_name="p95_seconds" if name.endswith("latency_p95") else "error_rate",
        interval=None,
        confidence=None,
        test="one-sample mixture SPRT against the SLO bound",
        statistic=now,
        p_value=p,
        e_value=e,
        threshold=1.0 / alpha,
        candidate_n=int(n),
        reason=reason,
        leaning=leaning,
        details=(("slo_bound", bound), ("alpha", alpha)),
    )


# ------------------------------------------------------------------ custom metrics


def custom_rule(
    name: str, analysis: Analysis, latest: Observation, policy: Policy, alpha: float
) -> Comparison:
    metric_name, _, rule = name.removeprefix("custom:").partition(":")
    metric = next(m for m in policy.custom_metrics if m.name == metric_name)
    tally = next(t for t in analysis.custom if t.name == name)
    if rule:
        chosen = metric.max_value if rule == "max_value" else metric.min_value
        bound_text = f"{'max' if rule == 'max_value' else 'min'} {float(chosen or 0.0):g}"
        needed = [("candidate", f"custom:{metric.name}")]
    else:
        change = float(metric.max_relative_change or 0.0)
        sign = 1.0 if metric.direction is Direction.INCREASE_IS_BAD else -1.0
        bound_text = f"baseline {signed_pct(sign * change)}"
        needed = [("baseline", f"custom:{metric.name}"), ("candidate", f"custom:{metric.name}")]
    e, p = e_value(analysis.peak(name))
    threshold = 1.0 / alpha
    mean_b = tally.baseline_sum / tally.baseline_n if tally.baseline_n else None
    mean_c = tally.candidate_sum / tally.candidate_n if tally.candidate_n else None
    counts = f"{int(tally.worse)} of {int(tally.valid)} intervals worse than {bound_text}"
    if e >= threshold:
        verdict = Verdict.FAIL
        reason = f"{metric.name}: {counts}: e-value {e:.3g} >= {threshold:.3g}"
    elif not tally.latest_valid:
        return missing_data(name, latest, needed)
    else:
        verdict = Verdict.NO_REGRESSION
        reason = f"{metric.name}: {counts} (e-value {e:.3g})"
    effect = mean_c / mean_b if mean_b and mean_c is not None else None
    now = float(seq.bernoulli_log_e(tally.worse, tally.valid, 0.5))
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=mean_b,
        candidate=mean_c,
        effect=effect,
        effect_name="mean_ratio",
        interval=None,
        confidence=None,
        test="sequential sign test over intervals (mixture SPRT, p0 = 1/2)",
        statistic=now,
        p_value=p,
        e_value=e,
        threshold=threshold,
        baseline_n=int(tally.baseline_n),
        candidate_n=int(tally.valid),
        reason=reason,
        leaning=now >= 0.0 and tally.worse * 2 > tally.valid,
        details=(("worse_intervals", tally.worse), ("alpha", alpha)),
    )
