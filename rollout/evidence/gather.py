"""Fetch exemplars from the metrics source and turn them into evidence: the candidate's
slow and failed requests, and typical requests of the versions asked for (the report sets
a version's typical trace beside the candidate's telling ones).

The I/O edge of `exemplars.py`, shared by the driver and the gate. Best effort: a
source that cannot answer becomes a note in the report and never changes a verdict.
"""

from __future__ import annotations

from rollout.analysis.observation import MetricsSource, MetricsSourceError, Target
from rollout.evidence.exemplars import ERROR, SLOW, TYPICAL, select_evidence
from rollout.evidence.report import TraceEvidence

TYPICAL_LIMIT = 3  # typical traces per version: enough for a median breakdown


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
    typical_of: tuple[str, ...] = (),
    typical_limit: int = TYPICAL_LIMIT,
) -> tuple[tuple[TraceEvidence, ...], tuple[str, ...]]:
    """The candidate's slow requests (above `slow_above` seconds, when given) and failed
    requests (when `errors`) in [start, end], with links; then up to `typical_limit` typical
    requests of each version in `typical_of`; and notes on what is missing."""
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
    notes: list[str] = []
    if not found and (slow_above is not None or errors):
        notes.append("no exemplar trace IDs for the candidate in the window")
    for version in typical_of:
        try:
            exemplars = source.exemplars(target, version, start, end)
        except MetricsSourceError as exc:
            notes.append(f"typical traces of {version} unavailable: {exc}")
            continue
        typical = select_evidence(
            exemplars, kind=TYPICAL, threshold=None, template=template, limit=typical_limit
        )
        if not typical:
            notes.append(f"no exemplar trace IDs for {version} in the window")
        found += typical
    return tuple(found), tuple(notes)
