"""The judge: a history of looks and a policy -> per-metric Comparisons -> a Verdict.

Every test is anytime-valid (see `sequential.py`), so the driver may call this after
every look with the whole history and the false-rollback rate over the rollout stays
at the policy's alpha. Alpha is split evenly (Bonferroni) over the active tests:
errors, latency, each SLO guard and each custom-metric rule.

Rules: FAIL as soon as a test proves a regression (even below the minimum sample);
otherwise NO_DATA when the latest look lacks a required number; otherwise
INCONCLUSIVE below `policy.min_requests` per version; otherwise PASS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from rollout.analysis import sequential as seq
from rollout.analysis import stats
from rollout.analysis.guards import custom_rule, max_e, missing_data, slo_errors, slo_latency
from rollout.analysis.history import HistoryArrays, history_arrays
from rollout.analysis.judge_text import ms, overall_reason, pct, signed_pct
from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.spec import Policy


def judge(history: Sequence[Observation], policy: Policy, *, details: bool = True) -> Judgement:
    """Judge the candidate against the baseline over every look so far.

    `details=False` skips the secondary numbers (bootstrap interval, Mann-Whitney,
    exact rate-ratio interval); the verdict and decision are identical.
    """
    if not history:
        return Judgement(Verdict.NO_DATA, (), None, "no look at the metrics yet")
    if policy.judge.kind == "kayenta":
        from rollout.analysis.kayenta import judge_kayenta  # kayenta imports this module

        return judge_kayenta(history, policy, details=details)
    arrays = history_arrays(history)
    tests = active_tests(policy)
    alpha = policy.alpha / len(tests)
    comparisons = [_run(name, history, arrays, policy, alpha, details) for name in tests]
    comparisons = [_gate_sample(c, arrays, policy) for c in comparisons]
    return combine(comparisons, policy, arrays)


def active_tests(policy: Policy) -> list[str]:
    names = ["error_rate", "latency_p95"]
    if policy.slo.max_error_rate is not None:
        names.append("slo:error_rate")
    if policy.slo.max_latency_seconds is not None:
        names.append("slo:latency_p95")
    for metric in policy.custom_metrics:
        if metric.max_relative_change is not None:
            names.append(f"custom:{metric.name}")
        if metric.max_value is not None:
            names.append(f"custom:{metric.name}:max_value")
        if metric.min_value is not None:
            names.append(f"custom:{metric.name}:min_value")
    return names


def _run(
    name: str,
    history: Sequence[Observation],
    arrays: HistoryArrays,
    policy: Policy,
    alpha: float,
    details: bool,
) -> Comparison:
    if name == "error_rate":
        return _errors(history, arrays, policy, alpha, details)
    if name == "latency_p95":
        return _latency(history, arrays, policy, alpha, details)
    if name == "slo:error_rate":
        return slo_errors(history, arrays, policy, alpha)
    if name == "slo:latency_p95":
        return slo_latency(history, arrays, policy, alpha)
    metric_name, _, rule = name.removeprefix("custom:").partition(":")
    metric = next(m for m in policy.custom_metrics if m.name == metric_name)
    return custom_rule(name, metric, rule or "relative", history, alpha)


# ------------------------------------------------------------------ helpers


def _gate_sample(comparison: Comparison, arrays: HistoryArrays, policy: Policy) -> Comparison:
    """Below the minimum sample a PASS becomes INCONCLUSIVE (a FAIL stands)."""
    if comparison.verdict is not Verdict.PASS:
        return comparison
    base_n, cand_n = arrays.baseline.total_requests, arrays.candidate.total_requests
    if min(base_n, cand_n) >= policy.min_requests:
        return comparison
    short = "candidate" if cand_n < base_n else "baseline"
    have = int(min(base_n, cand_n))
    reason = (
        f"too little data: {short} has {have} of the {policy.min_requests} requests "
        f"needed before a pass; {comparison.reason}"
    )
    return replace(comparison, verdict=Verdict.INCONCLUSIVE, reason=reason)


# ------------------------------------------------------------------ errors


def _errors(
    history: Sequence[Observation],
    arrays: HistoryArrays,
    policy: Policy,
    alpha: float,
    details: bool,
) -> Comparison:
    name = "error_rate"
    latest = len(history) - 1
    base, cand = arrays.baseline, arrays.candidate
    missing = [
        (version, "requests")
        for version, series in (("baseline", base), ("candidate", cand))
        if not series.has_requests[latest]
    ]
    log_e = seq.error_rate_log_e(
        cand.errors, base.errors, cand.requests, base.requests, policy.errors.max_increase
    )
    e, p = max_e(log_e)
    threshold = 1.0 / alpha
    n_b, n_c = base.total_requests, cand.total_requests
    rate_b = float(base.errors.sum()) / n_b if n_b > 0 else None
    rate_c = float(cand.errors.sum()) / n_c if n_c > 0 else None
    ratio = rate_c / rate_b if rate_b and rate_c is not None else None
    interval = None
    confidence = 1.0 - policy.alpha
    if details and n_b + n_c > 0:
        interval = stats.rate_ratio_interval(
            float(cand.errors.sum()),
            float(cand.errors.sum() + base.errors.sum()),
            n_c / (n_b + n_c),
            confidence,
        )
    extra: list[tuple[str, float]] = [
        ("rate_ratio_null", 1.0 + policy.errors.max_increase),
        ("baseline_errors", float(base.errors.sum())),
        ("candidate_errors", float(cand.errors.sum())),
        ("looks", float(len(history))),
        ("alpha", alpha),
    ]
    no_error_series = [
        v for v, s in (("baseline", base), ("candidate", cand)) if not s.has_errors[latest]
    ]
    change = _rate_change(rate_b, rate_c, ratio, interval, confidence)
    allowed = f"+{policy.errors.max_increase:.0%}"
    if e >= threshold:
        verdict = Verdict.FAIL
        reason = (
            f"candidate error rate {change} exceeds the allowed {allowed}: "
            f"e-value {e:.3g} >= {threshold:.3g}"
        )
    elif missing:
        return missing_data(name, history, missing)
    else:
        verdict = Verdict.PASS
        reason = f"error rate {change}: no rise beyond {allowed} shown (e-value {e:.3g})"
        if no_error_series:
            reason += f"; no error series for {' and '.join(no_error_series)}, counted as 0"
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=rate_b,
        candidate=rate_c,
        effect=ratio,
        effect_name="error_rate_ratio",
        interval=interval,
        confidence=confidence if interval else None,
        test="mixture SPRT on the conditional binomial (candidate's share of errors)",
        statistic=float(log_e[-1]),
        p_value=p,
        e_value=e,
        threshold=threshold,
        baseline_n=int(n_b),
        candidate_n=int(n_c),
        reason=reason,
        details=tuple(extra),
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
            text += f", {confidence:.0%} CI {interval[0]:.2f}-{interval[1]:.2f}"
        text += ")"
    return text


# ------------------------------------------------------------------ latency


def _latency(
    history: Sequence[Observation],
    arrays: HistoryArrays,
    policy: Policy,
    alpha: float,
    details: bool,
) -> Comparison:
    name = "latency_p95"
    q, r = policy.latency.quantile, policy.latency.max_regression
    latest = len(history) - 1
    base, cand, les = arrays.baseline, arrays.candidate, arrays.les
    missing = [
        (version, "latency")
        for version, series in (("baseline", base), ("candidate", cand))
        if not series.has_buckets[latest]
    ]
    threshold = 1.0 / alpha
    if les.size < 2:
        return missing_data(name, history, missing or [("both versions", "latency")])
    base_total, cand_total = base.buckets.sum(axis=0), cand.buckets.sum(axis=0)
    p_b = stats.histogram_quantile(q, les, base_total)
    p_c = stats.histogram_quantile(q, les, cand_total)
    log_e, tau, base_threshold = seq.latency_log_e(q, r, les, base.buckets, cand.buckets)
    e, p = max_e(log_e)
    ratio = p_c / p_b if math.isfinite(p_b) and p_b > 0 and math.isfinite(p_c) else None
    confidence = 1.0 - policy.alpha
    extra: list[tuple[str, float]] = [
        ("quantile", q),
        ("baseline_threshold_s", float(base_threshold[-1])),
        ("candidate_threshold_s", float(tau[-1])),
        ("looks", float(len(history))),
        ("alpha", alpha),
    ]
    interval = None
    if details:
        boot = stats.bootstrap_quantile_ratio(q, les, base_total, cand_total, confidence)
        if boot is not None:
            interval = (boot.low, boot.high)
            extra.append(("bootstrap_resamples", float(boot.resamples)))
        mw = stats.binned_mann_whitney(base_total, cand_total)
        if mw is not None:
            extra += [("mann_whitney_u", mw.u), ("mann_whitney_z", mw.z)]
            extra += [("mann_whitney_p", mw.p_value), ("mann_whitney_cles", mw.cles)]
    change = _p95_change(p_b, p_c, ratio, interval, confidence, int(q * 100))
    if e >= threshold:
        verdict = Verdict.FAIL
        reason = f"{change} exceeds the allowed +{r:.0%}: e-value {e:.3g} >= {threshold:.3g}"
    elif missing or not (math.isfinite(p_b) and math.isfinite(p_c)):
        return missing_data(name, history, missing or [("a version", "latency")])
    else:
        verdict = Verdict.PASS
        reason = f"{change}: no regression beyond +{r:.0%} shown (e-value {e:.3g})"
    return Comparison(
        metric=name,
        verdict=verdict,
        baseline=p_b if math.isfinite(p_b) else None,
        candidate=p_c if math.isfinite(p_c) else None,
        effect=ratio,
        effect_name="p95_ratio",
        interval=interval,
        confidence=confidence if interval else None,
        test=(
            "mixture SPRT on matched tails: the candidate's share of requests above "
            "(1+r) x the baseline's P95 vs the baseline's above its P95 (interpolated buckets)"
        ),
        statistic=float(log_e[-1]),
        p_value=p,
        e_value=e,
        threshold=threshold,
        baseline_n=int(base_total[-1]),
        candidate_n=int(cand_total[-1]),
        reason=reason,
        details=tuple(extra),
    )


def _p95_change(
    p_b: float,
    p_c: float,
    ratio: float | None,
    interval: tuple[float, float] | None,
    confidence: float,
    level: int,
) -> str:
    text = f"candidate P{level} {ms(p_c)} vs baseline {ms(p_b)}"
    if ratio is not None:
        text += f" (x{ratio:.2f}, {signed_pct(ratio - 1.0)}"
        if interval:
            text += f", {confidence:.0%} CI {interval[0]:.2f}-{interval[1]:.2f}"
        text += ")"
    return text


# ------------------------------------------------------------------ overall


def combine(comparisons: list[Comparison], policy: Policy, arrays: HistoryArrays) -> Judgement:
    """FAIL if any FAILs; else NO_DATA if any lacks data; else INCONCLUSIVE; else PASS."""
    for verdict in (Verdict.FAIL, Verdict.NO_DATA, Verdict.INCONCLUSIVE):
        hits = [c for c in comparisons if c.verdict is verdict]
        if hits:
            decider = max(hits, key=lambda c: (c.e_value or 0.0) / (c.threshold or 1.0))
            return Judgement(verdict, tuple(comparisons), decider.metric, decider.reason)
    reason = overall_reason(comparisons, policy.alpha, arrays.looks)
    return Judgement(Verdict.PASS, tuple(comparisons), None, reason)
