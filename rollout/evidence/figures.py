"""What the HTML report's figures show, computed from a Report: numbers, no drawing.

Per look, each version's latency quantile and error rate from that look's own counts, and the
judge's e-values after it. A report keeps only the final judgement, so the e-values of earlier
looks are recomputed by folding the report's looks through the same judge (`judge_next`), as
the rollout and the gate did; the last look's figures are the report's judgement. The latency
distributions are the judge's totals over every look, so the quantiles marked on them are the
estimates in the report's table.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from rollout.analysis.accumulate import Analysis, accumulate
from rollout.analysis.judge import judge_next
from rollout.analysis.observation import Observation, VersionCounts
from rollout.analysis.stats import bucket_arrays, histogram_quantile, version_error_rate
from rollout.analysis.verdict import Judgement
from rollout.evidence.report import Report, TraceEvidence

# The instrumentation contract's spans under a request's root span (see rollout.instrument).
STAGES: Final = ("feature_store.get_features", "model.infer", "postprocess.serialize")
OTHER: Final = "other"  # the root span's time outside the named stages


@dataclass(frozen=True)
class LookPoint:
    """One look's own figures (not the running totals), known at its end."""

    at: float
    baseline_latency: float | None  # the policy's quantile, seconds
    candidate_latency: float | None
    baseline_error_rate: float | None
    candidate_error_rate: float | None


@dataclass(frozen=True)
class EValueSeries:
    metric: str
    threshold: float | None
    values: tuple[float | None, ...]  # after each look; None: not judged at that look


@dataclass(frozen=True)
class Distribution:
    """A version's latency CDF over every look: (seconds, share of requests at or below)."""

    role: str  # "baseline" or "candidate"
    version: str
    points: tuple[tuple[float, float], ...]
    quantile: float | None  # the policy's quantile of this distribution, seconds
    requests: int


@dataclass(frozen=True)
class Breakdown:
    """Where one request's time went: seconds per stage, in `STAGES` order then `OTHER`."""

    label: str
    version: str
    stages: tuple[tuple[str, float], ...]
    total: float | None
    link: str = ""


@dataclass(frozen=True)
class Figures:
    looks: tuple[LookPoint, ...]
    e_values: tuple[EValueSeries, ...]
    distributions: tuple[Distribution, ...]  # baseline then candidate; () without histograms
    baseline_typical: Breakdown | None  # median of the baseline's traces in the report
    traces: tuple[Breakdown, ...]


def figures(report: Report) -> Figures:
    judgements, totals = _judged(report)
    return Figures(
        looks=tuple(look_point(o, report.policy.latency.quantile) for o in report.observations),
        e_values=e_value_series(judgements),
        distributions=_distributions(report, totals),
        baseline_typical=typical_breakdown(
            [e for e in report.evidence if e.version == report.target.baseline]
        ),
        traces=tuple(breakdown(e) for e in report.evidence),
    )


# ---------------------------------------------------------------------------- per look


def quantile_of(counts: VersionCounts, q: float) -> float | None:
    """One version's quantile over one look (None without observations)."""
    if not counts.buckets:
        return None
    les, cumulative = bucket_arrays(counts.buckets)
    if not cumulative.size or cumulative[-1] <= 0:
        return None
    value = histogram_quantile(q, les, cumulative)
    return value if math.isfinite(value) else None


def look_point(observation: Observation, q: float) -> LookPoint:
    base, cand = observation.baseline, observation.candidate
    return LookPoint(
        at=observation.end,
        baseline_latency=quantile_of(base, q),
        candidate_latency=quantile_of(cand, q),
        baseline_error_rate=version_error_rate(base),
        candidate_error_rate=version_error_rate(cand),
    )


def _judged(report: Report) -> tuple[list[Judgement], Analysis | None]:
    """The judgement after each look, and the totals over them all."""
    looks, policy = report.observations, report.policy
    judgements: list[Judgement] = []
    analysis: Analysis | None = None
    for k in range(len(looks)):
        analysis, judgement = judge_next(analysis, looks[: k + 1], policy)
        judgements.append(judgement)
    if analysis is None and looks:  # a judge without running state: the totals alone
        for look in looks:
            analysis = accumulate(analysis, look, policy)
    return judgements, analysis


def e_value_series(judgements: Sequence[Judgement]) -> tuple[EValueSeries, ...]:
    """Each metric's e-value after every look, metrics in order of first appearance."""
    metrics: list[str] = []
    for judgement in judgements:
        metrics += [c.metric for c in judgement.comparisons if c.metric not in metrics]
    series = []
    for metric in metrics:
        values: list[float | None] = []
        threshold: float | None = None
        for judgement in judgements:
            found = next((c for c in judgement.comparisons if c.metric == metric), None)
            e = found.e_value if found is not None else None
            values.append(e if e is not None and math.isfinite(e) else None)
            if found is not None and found.threshold is not None:
                threshold = found.threshold
        if any(v is not None for v in values):
            series.append(EValueSeries(metric, threshold, tuple(values)))
    return tuple(series)


# ---------------------------------------------------------------------------- distributions


def cdf_points(
    les: Sequence[float], cumulative: Sequence[float]
) -> tuple[tuple[float, float], ...]:
    """The CDF Prometheus' interpolation assumes: from (0, 0), straight between finite bounds."""
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        return ()
    points = [(0.0, 0.0)] if les[0] > 0 else []
    points += [(le, count / total) for le, count in zip(les, cumulative, strict=True)]
    return tuple((le, share) for le, share in points if math.isfinite(le))


def _distributions(report: Report, totals: Analysis | None) -> tuple[Distribution, ...]:
    if totals is None or not totals.les or not totals.baseline.buckets:
        return ()
    q = report.policy.latency.quantile
    les = np.asarray(totals.les)
    out = []
    for role, version, counts in (
        ("baseline", report.target.baseline, totals.baseline.buckets),
        ("candidate", report.target.candidate, totals.candidate.buckets),
    ):
        cumulative = np.maximum.accumulate(np.asarray(counts, dtype=np.float64))
        if not cumulative.size or cumulative[-1] <= 0:
            continue
        value = histogram_quantile(q, les, cumulative)
        out.append(
            Distribution(
                role=role,
                version=version,
                points=cdf_points(les.tolist(), cumulative.tolist()),
                quantile=value if math.isfinite(value) else None,
                requests=int(cumulative[-1]),
            )
        )
    return tuple(out)


# ---------------------------------------------------------------------------- traces


def breakdown(item: TraceEvidence) -> Breakdown:
    """A trace's stages; what the root span (or the exemplar's latency) holds beyond them is
    `OTHER`. Without spans read back: no stages, the exemplar's latency only."""
    durations = {name: 0.0 for name in STAGES}
    for span in item.spans:
        if span.name in durations and math.isfinite(span.duration_seconds):
            durations[span.name] += span.duration_seconds
    longest = max(
        (s.duration_seconds for s in item.spans if math.isfinite(s.duration_seconds)), default=0.0
    )
    latency = item.latency_seconds if item.latency_seconds is not None else 0.0
    total = max(longest, latency) if math.isfinite(latency) else longest
    label = f"{item.version} {item.kind} {item.trace_id[:8]}"
    if not item.spans:
        return Breakdown(label, item.version, (), total or None, item.link)
    named = sum(durations.values())
    stages = [(name, durations[name]) for name in STAGES]
    stages.append((OTHER, max(0.0, total - named)))
    return Breakdown(label, item.version, tuple(stages), total, item.link)


def typical_breakdown(items: Sequence[TraceEvidence]) -> Breakdown | None:
    """The median of each stage over traces with spans; None without any."""
    parts = [breakdown(item) for item in items if item.spans]
    if not parts:
        return None
    names = [name for name, _ in parts[0].stages]
    stages = tuple((name, statistics.median(dict(p.stages)[name] for p in parts)) for name in names)
    total = statistics.median(p.total or 0.0 for p in parts)
    label = f"{parts[0].version} typical (median of {len(parts)})"
    return Breakdown(label, parts[0].version, stages, total)
