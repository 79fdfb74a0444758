"""report.json: every number behind a decision, for machines.

Keys are snake_case and stable; `schema_version` changes when one is renamed or removed.
The policy is written as the user would write it (camelCase, its own file format). Floats
that JSON cannot carry (NaN, +Inf, -Inf) are written as the strings "NaN", "+Inf", "-Inf",
as Prometheus' HTTP API does, so the file is always valid JSON and nothing is lost.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from rollout.analysis.observation import Observation, QueryRecord, VersionCounts
from rollout.analysis.verdict import Comparison, Judgement
from rollout.evidence.render_common import change_summary, change_text, utc
from rollout.evidence.report import Report, TraceEvidence, WeightChange
from rollout.evidence.traces import span_duration

SCHEMA_VERSION: Final = 1


def render_json(report: Report) -> str:
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": report.kind,
        "name": report.name,
        "target": {
            "model": report.target.model,
            "baseline": report.target.baseline,
            "candidate": report.target.candidate,
        },
        "decision": report.decision,
        "reason": report.reason,
        "summary": change_summary(report.judgement),
        "started_at": report.started_at,
        "started_at_utc": utc(report.started_at),
        "finished_at": report.finished_at,
        "finished_at_utc": utc(report.finished_at),
        "analysis": _analysis(report),
        "policy": report.policy.model_dump(mode="json", by_alias=True),
        "judgement": _judgement(report.judgement),
        "observations": [_observation(i, o) for i, o in enumerate(report.observations, 1)],
        "evidence": [_evidence(e) for e in report.evidence],
        "weight_changes": [_weight_change(w) for w in report.weight_changes],
        "notes": list(report.notes),
    }
    return json.dumps(_finite(document), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def _finite(value: Any) -> Any:
    """Non-finite floats -> "NaN" / "+Inf" / "-Inf", recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _analysis(report: Report) -> dict[str, Any]:
    """The policy's rules in one flat place: what every comparison was held to."""
    policy = report.policy
    return {
        "quantile": policy.latency.quantile,
        "latency_max_regression": policy.latency.max_regression,
        "errors_max_increase": policy.errors.max_increase,
        "alpha": policy.alpha,
        "min_requests": policy.min_requests,
        "interval_seconds": policy.analysis.interval,
        "window_seconds": policy.analysis.look_window,
        "slo_max_error_rate": policy.slo.max_error_rate,
        "slo_max_latency_seconds": policy.slo.max_latency_seconds,
        "judge": policy.judge.kind,
    }


def _judgement(judgement: Judgement | None) -> dict[str, Any] | None:
    if judgement is None:
        return None
    return {
        "verdict": judgement.verdict.value,
        "decided_by": judgement.decided_by,
        "reason": judgement.reason,
        "comparisons": [_comparison(c) for c in judgement.comparisons],
    }


def _comparison(comparison: Comparison) -> dict[str, Any]:
    interval = comparison.interval
    return {
        "metric": comparison.metric,
        "verdict": comparison.verdict.value,
        "baseline": comparison.baseline,
        "candidate": comparison.candidate,
        "effect": comparison.effect,
        "effect_name": comparison.effect_name,
        "interval": None if interval is None else {"low": interval[0], "high": interval[1]},
        "confidence": comparison.confidence,
        "change": change_text(comparison),
        "test": comparison.test,
        "statistic": comparison.statistic,
        "p_value": comparison.p_value,
        "e_value": comparison.e_value,
        "threshold": comparison.threshold,
        "baseline_n": comparison.baseline_n,
        "candidate_n": comparison.candidate_n,
        "reason": comparison.reason,
        "details": {name: value for name, value in comparison.details},
    }


def _observation(look: int, observation: Observation) -> dict[str, Any]:
    return {
        "look": look,
        "start": observation.start,
        "end": observation.end,
        "start_utc": utc(observation.start),
        "end_utc": utc(observation.end),
        "window_seconds": observation.end - observation.start,
        "baseline": _counts(observation.baseline),
        "candidate": _counts(observation.candidate),
        "custom": [
            {"name": c.name, "baseline": c.baseline, "candidate": c.candidate}
            for c in observation.custom
        ],
        "queries": [_query(q) for q in observation.queries],
        "problems": list(observation.problems),
    }


def _counts(counts: VersionCounts) -> dict[str, Any]:
    requests, errors = counts.requests, counts.errors
    rate = errors / requests if requests and errors is not None else None
    buckets = counts.buckets
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": rate,
        "buckets": None if buckets is None else [{"le": b.le, "count": b.count} for b in buckets],
    }


def _query(query: QueryRecord) -> dict[str, Any]:
    return {
        "signal": query.signal,
        "promql": query.promql,
        "evaluated_at": query.evaluated_at,
        "evaluated_at_utc": utc(query.evaluated_at),
        "series": query.series,
        "note": query.note,
    }


def _evidence(item: TraceEvidence) -> dict[str, Any]:
    return {
        "trace_id": item.trace_id,
        "version": item.version,
        "kind": item.kind,
        "latency_seconds": item.latency_seconds,
        "timestamp": item.timestamp,
        "timestamp_utc": utc(item.timestamp),
        "link": item.link,
        "model_infer_seconds": span_duration(item.spans),
        "spans": [{"name": s.name, "duration_seconds": s.duration_seconds} for s in item.spans],
    }


def _weight_change(change: WeightChange) -> dict[str, Any]:
    return {
        "at": change.at,
        "at_utc": utc(change.at),
        "baseline": change.weights.baseline,
        "candidate": change.weights.candidate,
        "reason": change.reason,
    }
