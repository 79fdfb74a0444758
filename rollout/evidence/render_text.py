"""The terminal summary a person reads in five seconds; plain text, so CI logs show it as is."""

from __future__ import annotations

from typing import Final

from rollout.analysis.verdict import Comparison
from rollout.evidence.render_common import (
    change_text,
    format_value,
    headline_parts,
    metric_label,
    metric_unit,
    one_line,
)
from rollout.evidence.report import Report

MAX_METRIC_ROWS: Final = 12  # keeps the summary within about 20 lines; the rest is in the files


def render_text(report: Report) -> str:
    label, subject = headline_parts(report)
    lines = [f"{label.upper()}: {subject}"]
    judgement = report.judgement
    comparisons = judgement.comparisons if judgement is not None else ()
    if comparisons:
        lines += _table(comparisons[:MAX_METRIC_ROWS])
        if len(comparisons) > MAX_METRIC_ROWS:
            lines.append(f"... {len(comparisons) - MAX_METRIC_ROWS} more metrics in the report")
    else:
        lines.append("no metric was compared")
    if judgement is not None and judgement.decided_by:
        why = "" if judgement.reason == report.reason else f": {one_line(judgement.reason)}"
        lines.append(f"decided by {judgement.decided_by}{why}")
    lines.append(f"decision: {report.decision} - {one_line(report.reason)}")
    if report.evidence:
        first = report.evidence[0]
        lines.append(f"evidence: {len(report.evidence)} trace(s), e.g. {one_line(first.link)}")
    return "\n".join(lines) + "\n"


def _table(comparisons: tuple[Comparison, ...]) -> list[str]:
    header = ("metric", "baseline", "candidate", "change", "verdict")
    rows = [header]
    for comparison in comparisons:
        unit = metric_unit(comparison.metric)
        rows.append(
            (
                metric_label(comparison.metric),
                format_value(comparison.baseline, unit),
                format_value(comparison.candidate, unit),
                change_text(comparison),
                comparison.verdict.value,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
