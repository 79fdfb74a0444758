"""SLO guards and custom-metric rules of the sequential judge, and shared helpers.

SLO guards: one-sample mixture SPRTs that the candidate's error rate, or its tail
above the latency bound, exceeds what the bound allows (valid per interval even if
the candidate drifts). Custom metrics: a sequential sign test over intervals:
under H0 the candidate is worse than the rule in an interval with probability
<= 1/2, so the count of worse intervals is tested as Bernoulli(1/2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rollout.analysis import sequential as seq
from rollout.analysis import stats
from rollout.analysis.history import HistoryArrays
from rollout.analysis.judge_text import ms, pct, signed_pct
from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Verdict
from rollout.spec import CustomMetric, Direction, Policy

E_CAP = 1e300  # e-values are reported as floats; beyond this they are "certain"


def max_e(log_e: np.ndarray) -> tuple[float, float]:
    """(max e-value over the looks, its anytime-valid p-value)."""
    top = float(np.max(log_e)) if log_e.size else 0.0
    e = E_CAP if top > math.log(E_CAP) else math.exp(top)
    return e, min(1.0, 1.0 / e)


def missing_data(
    name: str, history: Sequence[Observation], what: list[tuple[str, str]]
) -> Comparison:
    """NO_DATA naming the version, the signal and the query that came back empty."""
    latest = history[-1]
    parts = []
    for version, signal in what:
        query = next((q.promql for q in latest.queries if q.signal == signal), None)
        parts.append(f"{version} {signal}" + (f" (query: {query})" if query else ""))
    problems = f"; source reported: {', '.join(latest.problems)}" if latest.problems else ""
    reason = f"no data for {name} in the latest look: {'; '.join(parts)}{problems}"
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


def slo_errors(
    history: Sequence[Observation], arrays: HistoryArrays, policy: Policy, alpha: float
) -> Comparison:
    name, bound = "slo:error_rate", float(policy.slo.max_error_rate or 0.0)
    cand = arrays.candidate
    log_e = seq.bernoulli_log_e(np.cumsum(cand.errors), np.cumsum(cand.requests), bound)
    e, p = max_e(log_e)
    n = cand.total_requests
    rate = float(cand.errors.sum()) / n if n > 0 else None
    verdict, reason = _guard_verdict(
        e, 1.0 / alpha, f"candidate error rate {pct(rate)}", pct(bound)
    )
    if verdict is Verdict.PASS and not cand.has_requests[-1]:
        return missing_data(name, history, [("candidate", "requests")])
    return _guard(name, verdict, rate, bound, log_e, e, p, alpha, int(n), reason, "error_rate")


def slo_latency(
    history: Sequence[Observation], arrays: HistoryArrays, policy: Policy, alpha: float
) -> Comparison:
    name, bound = "slo:latency_p95", float(policy.slo.max_latency_seconds or 0.0)
    q, cand, les = policy.latency.quantile, arrays.candidate, arrays.les
    if les.size < 2:
        return missing_data(name, history, [("candidate", "latency")])
    log_e = seq.tail_log_e(q, bound, les, cand.buckets)
    e, p = max_e(log_e)
    total = cand.buckets.sum(axis=0)
    p_c = stats.histogram_quantile(q, les, total)
    estimate = p_c if math.isfinite(p_c) else None
    label = f"candidate P{int(q * 100)} {ms(estimate)}"
    verdict, reason = _guard_verdict(e, 1.0 / alpha, label, ms(bound))
    if verdict is Verdict.PASS and (not cand.has_buckets[-1] or estimate is None):
        return missing_data(name, history, [("candidate", "latency")])
    n = int(total[-1])
    return _guard(name, verdict, estimate, bound, log_e, e, p, alpha, n, reason, "p95_seconds")


def _guard_verdict(e: float, threshold: float, label: str, bound: str) -> tuple[Verdict, str]:
    if e >= threshold:
        return Verdict.FAIL, f"{label} exceeds the SLO {bound}: e-value {e:.3g} >= {threshold:.3g}"
    return Verdict.PASS, f"{label} within the SLO {bound} (e-value {e:.3g})"


def _guard(
    name: str,
    verdict: Verdict,
    estimate: float | None,
    bound: float,
    log_e: np.ndarray,
    e: float,
    p: float,
    alpha: float,
    n: int,
    reason: str,
    effect_name: str,
) -> Comparison:
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=None,
        candidate=estimate,
        effect=estimate,
        effect_name=effect_name,
        interval=None,
        confidence=None,
        test="one-sample mixture SPRT against the SLO bound",
        statistic=float(log_e[-1]) if log_e.size else None,
        p_value=p,
        e_value=e,
        threshold=1.0 / alpha,
        candidate_n=n,
        reason=reason,
        details=(("slo_bound", bound), ("alpha", alpha)),
    )


# ------------------------------------------------------------------ custom metrics


def _value(v: float | None) -> float:
    return float(v) if v is not None and math.isfinite(v) else math.nan


def custom_rule(
    name: str, metric: CustomMetric, rule: str, history: Sequence[Observation], alpha: float
) -> Comparison:
    pairs = []
    for obs in history:
        found = next((c for c in obs.custom if c.name == metric.name), None)
        pairs.append(
            (_value(found.baseline), _value(found.candidate)) if found else (math.nan, math.nan)
        )
    values = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    base, cand = values[:, 0], values[:, 1]
    increase_bad = metric.direction is Direction.INCREASE_IS_BAD
    if rule == "relative":
        change = float(metric.max_relative_change or 0.0)
        sign = 1.0 if increase_bad else -1.0
        limit = base + sign * np.abs(base) * change
        valid = np.isfinite(base) & np.isfinite(cand)
        worse = np.where(increase_bad, cand > limit, cand < limit) & valid
        bound_text = f"baseline {signed_pct(sign * change)}"
        needed = [("baseline", f"custom:{metric.name}"), ("candidate", f"custom:{metric.name}")]
        latest_ok = bool(valid[-1])
    else:
        chosen = metric.max_value if rule == "max_value" else metric.min_value
        limit_value = float(chosen if chosen is not None else 0.0)
        valid = np.isfinite(cand)
        worse = (cand > limit_value if rule == "max_value" else cand < limit_value) & valid
        bound_text = f"{'max' if rule == 'max_value' else 'min'} {limit_value:g}"
        needed = [("candidate", f"custom:{metric.name}")]
        latest_ok = bool(valid[-1])
    log_e = seq.sign_test_log_e(worse, valid)
    e, p = max_e(log_e)
    threshold = 1.0 / alpha
    mean_b = float(np.nanmean(base)) if np.isfinite(base).any() else None
    mean_c = float(np.nanmean(cand)) if np.isfinite(cand).any() else None
    counts = f"{int(worse.sum())} of {int(valid.sum())} intervals worse than {bound_text}"
    if e >= threshold:
        verdict = Verdict.FAIL
        reason = f"{metric.name}: {counts}: e-value {e:.3g} >= {threshold:.3g}"
    elif not latest_ok:
        return missing_data(name, history, needed)
    else:
        verdict = Verdict.PASS
        reason = f"{metric.name}: {counts} (e-value {e:.3g})"
    effect = mean_c / mean_b if mean_b and mean_c is not None else None
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
        statistic=float(log_e[-1]),
        p_value=p,
        e_value=e,
        threshold=threshold,
        baseline_n=int(np.isfinite(base).sum()),
        candidate_n=int(valid.sum()),
        reason=reason,
        details=(("worse_intervals", float(worse.sum())), ("alpha", alpha)),
    )
