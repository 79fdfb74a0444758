"""Fetch the candidate's exemplars from the metrics source and turn them into evidence.

The I/O edge of `exemplars.py`, shared by the driver and the gate. Best effort: a
source that cannot answer becomes a note in the report and never changes a verdict.
"""

from __future__ import annotations

from rollout.analysis.observation import MetricsSource, MetricsSourceError, Target
from rollout.evidence.exemplars import ERROR, SLOW, select_evidence
from rollout.evidence.report import TraceEvidence


def gather_evidence(
    source: MetricsSource,
    target: Target,
    start: float,
    end: float,
    *,
    slow_above: float | None,
    errors: bool,
    template: str,
    limit: int,
) -> tuple[tuple[TraceEvidence, ...], tuple[str, ...]]:
    """The candidate's slow requests (above `slow_above` seconds, when given) and failed
    requests (when `errors`) in [start, end], with links; and notes on what is missing."""
    found: list[TraceEvidence] = []
    try:
        if slow_above is not None:
            slow = source.exemplars(target, target.candidate, start, end, min_latency=slow_above)
            found += select_evidence(
                slow, kind=SLOW, threshold=slow_above, template=template, limit=limit
            )
        if errors:
            failed = source.exemplars(target, target.candidate, start, end, errors_only=True)
            found += select_evidence(
                failed, kind=ERROR, threshold=None, template=template, limit=limit
            )
    except MetricsSourceError as exc:
        return tuple(found), (f"exemplar evidence unavailable: {exc}",)
    if not found and (slow_above is not None or errors):
        return (), ("no exemplar trace IDs for the candidate in the window",)
    return tuple(found), ()
