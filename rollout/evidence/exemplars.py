"""Exemplars -> trace evidence: which requests a report names, and links: the candidate's
slow and failed ones, and a few typical ones of each version to set beside them.

Pure: the driver and the gate fetch exemplars (`MetricsSource.exemplars`) and span timings
(e.g. from the demo's exported spans); this module only selects, orders and links them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

from rollout.analysis.observation import Exemplar
from rollout.evidence.report import SpanTiming, TraceEvidence

SLOW: Final = "slow"
ERROR: Final = "error"
TYPICAL: Final = "typical"  # near the median latency of the version's exemplars
KINDS: Final = (SLOW, ERROR, TYPICAL)
TRACE_ID_PLACEHOLDER: Final = "{trace_id}"


def build_link(template: str, trace_id: str) -> str:
    """Substitute `{trace_id}` (URL-quoted) into the template; every other brace stays literal.

    `str.format` is not used on purpose: Grafana explore URLs carry JSON with braces.
    Userinfo (`user:password@`) is dropped so a credential in a template never reaches a report.
    """
    link = template.replace(TRACE_ID_PLACEHOLDER, quote(trace_id, safe=""))
    parts = urlsplit(link)
    if parts.netloc and "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        link = urlunsplit(parts)
    return link


def select_evidence(
    exemplars: Iterable[Exemplar],
    *,
    kind: str,
    threshold: float | None,
    template: str,
    limit: int,
) -> tuple[TraceEvidence, ...]:
    """Up to `limit` traces of one kind, one per trace ID, the most telling first.

    `slow`: exemplars above `threshold` seconds (the baseline's quantile x (1 + tolerance)),
    slowest first. `error`: the exemplars of failed requests (the caller asks the source for
    those), most recent first; `threshold`, when given, still filters by latency. `typical`:
    the exemplars nearest the median latency of those given, nearest first.
    An exemplar without a trace ID, or a slow one without a finite latency, names nothing.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    best: dict[str, Exemplar] = {}  # keyed case-insensitively: W3C trace IDs are hex
    for exemplar in exemplars:
        key = exemplar.trace_id.strip().lower()
        finite = math.isfinite(exemplar.value)
        if not key or (kind == SLOW and not finite):
            continue
        if threshold is not None and not (finite and exemplar.value > threshold):
            continue
        known = best.get(key)
        if known is None or _rank(exemplar, kind) < _rank(known, kind):
            best[key] = exemplar
    if kind == TYPICAL:
        return _typical(best.values(), template, limit)
    chosen = sorted(best.values(), key=lambda e: (_rank(e, kind), e.trace_id))[:limit]
    return _evidence(chosen, kind, template)


def _typical(exemplars: Iterable[Exemplar], template: str, limit: int) -> tuple[TraceEvidence, ...]:
    finite = [e for e in exemplars if math.isfinite(e.value)]
    if not finite:
        return ()
    median = statistics.median(e.value for e in finite)
    chosen = sorted(finite, key=lambda e: (abs(e.value - median), -e.timestamp, e.trace_id))
    return _evidence(chosen[:limit], TYPICAL, template)


def _evidence(chosen: Iterable[Exemplar], kind: str, template: str) -> tuple[TraceEvidence, ...]:
    return tuple(
        TraceEvidence(
            trace_id=exemplar.trace_id.strip(),
            version=exemplar.version,
            kind=kind,
            latency_seconds=exemplar.value if math.isfinite(exemplar.value) else None,
            timestamp=exemplar.timestamp,
            link=build_link(template, exemplar.trace_id.strip()),
        )
        for exemplar in chosen
    )


def _rank(exemplar: Exemplar, kind: str) -> tuple[float, float]:
    """Sort key, smaller first: slow -> slowest then latest; error -> latest then slowest."""
    latency = exemplar.value if math.isfinite(exemplar.value) else -math.inf
    if kind == SLOW:
        return (-latency, -exemplar.timestamp)
    return (-exemplar.timestamp, -latency)


def attach_spans(
    evidence: Iterable[TraceEvidence],
    lookup: Callable[[str], tuple[SpanTiming, ...]],
) -> tuple[TraceEvidence, ...]:
    """Each trace with the span timings `lookup(trace_id)` returns (() when it has none).

    Errors of `lookup` propagate: the caller decides whether missing spans are a note.
    """
    return tuple(replace(item, spans=tuple(lookup(item.trace_id))) for item in evidence)
