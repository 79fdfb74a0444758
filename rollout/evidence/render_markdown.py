"""report.md: the decision for a PR comment or a CI job summary (GitHub-flavoured Markdown).

Every text that comes from outside (reasons, notes, queries, trace IDs, links) is escaped:
it cannot break a table, open HTML, or turn into a link to a non-HTTP scheme.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.evidence.render_common import (
    BAD_DECISIONS,
    GOOD_DECISIONS,
    MISSING,
    change_summary,
    change_text,
    counts_text,
    duration,
    format_value,
    headline,
    latency,
    metric_label,
    metric_unit,
    one_line,
    statistic_text,
    threshold_text,
    utc,
)
from rollout.evidence.report import Report
from rollout.evidence.traces import span_duration

_VERDICT_ICONS = {
    Verdict.NO_REGRESSION: "✅",
    Verdict.FAIL: "❌",
    Verdict.INCONCLUSIVE: "⚠️",
    Verdict.NO_DATA: "⚠️",
}
_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
_URL_SAFE = ":/?#[]@!$&'*+,;=%~-._"


def render_markdown(report: Report) -> str:
    sections = [
        _headline(report),
        _metrics(report.judgement),
        _samples(report),
        _evidence(report),
        _weights(report),
        _notes(report),
        _queries(report.observations),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


# ---------------------------------------------------------------------------- escaping


def text(value: str) -> str:
    """Plain text: one line, Markdown and HTML specials escaped. `<` and `&` are enough to
    keep HTML out; `>` stays as it is, so "100/0 -> 80/20" reads as written."""
    escaped = one_line(value).replace("&", "&amp;").replace("<", "&lt;")
    return _SPECIAL.sub(r"\\\1", escaped)


def code(value: str) -> str:
    """Inline code with a fence longer than any backtick run inside; `|` escaped for tables."""
    value = one_line(value)
    fence = "`" * (_longest_backticks(value) + 1)
    padded = f" {value} " if value.startswith("`") or value.endswith("`") else value
    return f"{fence}{padded}{fence}".replace("|", "\\|")


def link(label: str, url: str) -> str:
    """A link only to http(s); anything else is shown as code, never made clickable."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return label
    return f"[{label}]({quote(one_line(url), safe=_URL_SAFE)})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- sections


def _decision_icon(decision: str) -> str:
    if decision in GOOD_DECISIONS:
        return "✅"
    return "❌" if decision in BAD_DECISIONS else "⚠️"


def _headline(report: Report) -> str:
    target, policy = report.target, report.policy
    lines = [
        f"## {_decision_icon(report.decision)} {text(headline(report))}",
        "",
        f"**{text(report.kind)}** {code(report.name)} · model {code(target.model)} · "
        f"baseline {code(target.baseline)} · candidate {code(target.candidate)} · "
        f"policy {code(report.policy_name)} (P{policy.latency.quantile * 100:g} regression allowed "
        f"{policy.latency.max_regression * 100:g}%, alpha {policy.alpha:g})",
    ]
    if report.reason:
        lines += ["", f"> {text(report.reason)}"]
    if summary := change_summary(report.judgement):
        lines += ["", f"**Change:** {text(summary)}."]
    judgement = report.judgement
    if judgement is not None and judgement.decided_by:
        why = "" if judgement.reason == report.reason else f": {text(judgement.reason)}"
        lines += ["", f"Decided by {code(judgement.decided_by)}{why}"]
    return "\n".join(lines)


def _metrics(judgement: Judgement | None) -> str:
    if judgement is None:
        return "### Metrics\n\nNo judgement was made: see the reason and notes."
    if not judgement.comparisons:
        return "### Metrics\n\nNo metric was compared."
    rows = [_metric_row(c) for c in judgement.comparisons]
    header = ["Metric", "Baseline", "Candidate", "Change", "n (baseline / candidate)"]
    header += ["Test", "e-value / p", "e-value needed", "Verdict"]
    reasons = [f"- {code(c.metric)}: {text(c.reason)}" for c in judgement.comparisons if c.reason]
    lines = ["### Metrics", "", _table(header, rows)]
    return "\n".join([*lines, "", *reasons] if reasons else lines)


def _metric_row(comparison: Comparison) -> list[str]:
    unit = metric_unit(comparison.metric)
    return [
        text(metric_label(comparison.metric)),
        format_value(comparison.baseline, unit),
        format_value(comparison.candidate, unit),
        text(change_text(comparison)),
        f"{comparison.baseline_n:,} / {comparison.candidate_n:,}",
        text(comparison.test) or MISSING,
        text(statistic_text(comparison)),
        threshold_text(comparison),
        f"{_VERDICT_ICONS[comparison.verdict]} {comparison.verdict.value}",
    ]


def _samples(report: Report) -> str:
    if not report.observations:
        return ""
    header = ["Look", "Window (UTC)", "Length", "Baseline requests / errors"]
    header += ["Candidate requests / errors", "Problems"]
    rows = [
        [
            str(look),
            f"{utc(o.start)} .. {utc(o.end)}",
            duration(o.end - o.start),
            counts_text(o.baseline),
            counts_text(o.candidate),
            text("; ".join(o.problems)) or "none",
        ]
        for look, o in enumerate(report.observations, 1)
    ]
    return "### Samples and windows\n\n" + _table(header, rows)


def _evidence(report: Report) -> str:
    if not report.evidence:
        return ""
    header = ["Trace", "Version", "Kind", "Latency", "model.infer", "Time (UTC)"]
    rows = [
        [
            link(code(e.trace_id), e.link),
            code(e.version),
            text(e.kind),
            latency(e.latency_seconds),
            latency(span_duration(e.spans)),
            utc(e.timestamp),
        ]
        for e in report.evidence
    ]
    return "### Trace evidence\n\n" + _table(header, rows)


def _weights(report: Report) -> str:
    if not report.weight_changes:
        return ""
    header = ["Time (UTC)", "Baseline", "Candidate", "Reason"]
    rows = [
        [utc(w.at), f"{w.weights.baseline}%", f"{w.weights.candidate}%", text(w.reason)]
        for w in report.weight_changes
    ]
    return "### Weights\n\n" + _table(header, rows)


def _notes(report: Report) -> str:
    if not report.notes:
        return ""
    return "### Notes\n\n" + "\n".join(f"- {text(note)}" for note in report.notes)


def _queries(observations: tuple[Observation, ...]) -> str:
    records = [(look, q) for look, o in enumerate(observations, 1) for q in o.queries]
    if not records:
        return ""
    blocks = []
    for look, query in records:
        note = f" · {text(query.note)}" if query.note else ""
        fence = "`" * max(3, _longest_backticks(query.promql) + 1)
        blocks.append(
            f"look {look} · **{text(query.signal)}** · evaluated at {utc(query.evaluated_at)} · "
            f"{query.series} series{note}\n\n{fence}promql\n{query.promql.strip()}\n{fence}"
        )
    summary = f"<summary>PromQL queries ({len(records)})</summary>"
    return "<details>\n" + summary + "\n\n" + "\n\n".join(blocks) + "\n\n</details>"


def _longest_backticks(value: str) -> int:
    return max((len(run) for run in re.findall(r"`+", value)), default=0)
