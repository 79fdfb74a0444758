"""report.html: the decision for a person, in a browser, with its plots.

One self-contained file: the plots are inline SVG (`html_plots.py`, `charts.py`), the styles
and the copy buttons' few lines of script are inline, and a Content-Security-Policy forbids
the page to fetch anything, so it opens the same with no network. The only URLs in it are the
trace links, plain `<a href>` to http(s) or file, followed only when a reader clicks them.
Every text from outside (names, reasons, notes, queries, trace IDs, links) is escaped
(`html_text.py`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Final

from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Comparison, Judgement
from rollout.evidence.figures import Figures, figures
from rollout.evidence.html_plots import plots, traces
from rollout.evidence.html_text import block, code, link, table, text, tone
from rollout.evidence.render_common import (
    MISSING,
    change_text,
    counts_text,
    decision_label,
    duration,
    format_value,
    headline_parts,
    latency,
    metric_label,
    metric_unit,
    statistic_text,
    threshold_text,
    utc,
)
from rollout.evidence.report import Report, TraceEvidence
from rollout.evidence.traces import span_duration

STYLE: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;
 margin:0;background:#f9fafb}
main{max-width:980px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0}h2{font-size:19px;margin:28px 0 8px;
 border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.banner{padding:14px 18px;border-radius:8px;color:#fff;margin-top:8px}
.banner.good{background:#15803d}.banner.bad{background:#b91c1c}.banner.neutral{background:#b45309}
.banner p{margin:4px 0}.meta{color:#374151;font-size:14px}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
table{border-collapse:collapse;width:100%;font-size:14px;background:#fff}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}
dl.proof{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px;background:#fff;
 border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px}
dl.proof dt{font-weight:600}dl.proof dd{margin:0}
figure{margin:12px 0 20px;background:#fff;border:1px solid #e5e7eb;border-radius:8px;
 padding:8px}
figure svg{width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#4b5563;margin:4px 6px}
svg text{font:12px system-ui,sans-serif}svg text:not([fill]){fill:#374151}
svg text.title{font-size:13px}
svg text.legend{fill:#111827}
.query{background:#fff;border:1px solid #e5e7eb;border-radius:6px;margin:8px 0;padding:6px 10px}
.query pre{white-space:pre-wrap;word-break:break-all;margin:6px 0 0}
.query button{float:right;font-size:12px;cursor:pointer}
.empty{color:#6b7280;font-style:italic}
"""

# Copy buttons: the clipboard API where the page may use it, else a selected textarea. They are
# hidden until this script runs: where scripts are off, no button that does nothing.
SCRIPT: Final = """
document.querySelectorAll('button[data-copy]').forEach(function (button) {
  button.hidden = false;
});
function copyText(text) {
  var area = document.createElement('textarea');
  area.value = text;
  document.body.appendChild(area);
  area.select();
  var copied = false;
  try { copied = document.execCommand('copy'); } catch (e) { copied = false; }
  area.remove();
  return copied;
}
document.addEventListener('click', function (event) {
  var button = event.target.closest('button[data-copy]');
  if (!button) { return; }
  var text = document.getElementById(button.getAttribute('data-copy')).textContent;
  var done = function () { button.textContent = 'Copied'; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { if (copyText(text)) { done(); } });
  } else if (copyText(text)) {
    done();
  }
});
"""


def _sha256(source: str) -> str:
    return base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


# Nothing may be fetched: no default source, the inline style and script allowed by hash.
CSP: Final = (
    f"default-src 'none'; style-src 'sha256-{_sha256(STYLE)}'; "
    f"script-src 'sha256-{_sha256(SCRIPT)}'; img-src data:; base-uri 'none'; form-action 'none'"
)


def render_html(report: Report) -> str:
    label, subject = headline_parts(report)
    data = figures(report)
    sections = [
        _banner(report),
        _proof(report, data),
        plots(report, data),
        traces(report, data),
        _metrics(report.judgement),
        _looks(report.observations),
        _weights(report),
        _notes(report),
        _queries(report.observations),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(f'{label}: {subject}')}</title><style>{STYLE}</style></head>\n"
        "<body><main>\n" + "\n".join(s for s in sections if s) + "\n</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


# ---------------------------------------------------------------------------- sections


def _banner(report: Report) -> str:
    label, subject = headline_parts(report)
    target, policy = report.target, report.policy
    q = policy.latency.quantile
    meta = (
        f"{text(report.kind)} {code(report.name)} · model {code(target.model)} · "
        f"baseline {code(target.baseline)} · candidate {code(target.candidate)} · policy "
        f"{code(report.policy_name)} (P{q * 100:g} regression allowed "
        f"{policy.latency.max_regression * 100:g}%, alpha {policy.alpha:g})"
    )
    span = report.finished_at - report.started_at
    when = f"{utc(report.started_at)} .. {utc(report.finished_at)}"
    if report.started_at > 0 and report.finished_at > 0:
        when += f" ({duration(span)})"
    return (
        f'<header class="banner {tone(report.decision)}" id="decision">'
        f"<h1>{text(label)}: {text(subject)}</h1>"
        f"<p>{text(report.reason)}</p></header>"
        f'<p class="meta">{meta}<br>{text(when)}</p>'
    )


def _comparison(judgement: Judgement | None, metric: str) -> Comparison | None:
    if judgement is None:
        return None
    return next((c for c in judgement.comparisons if c.metric == metric), None)


def _estimate_line(comparison: Comparison | None) -> str:
    """'76 ms -> 147 ms: +93% (99.75% CI +26% .. +Inf), n = 473 / 60'."""
    if comparison is None:
        return '<span class="empty">not compared</span>'
    unit = metric_unit(comparison.metric)
    values = " → ".join(format_value(v, unit) for v in (comparison.baseline, comparison.candidate))
    sizes = f"n = {comparison.baseline_n:,} / {comparison.candidate_n:,}"
    verdict = comparison.verdict.value
    return text(f"{values}: {change_text(comparison)}, {sizes} ({verdict})")


def _proof(report: Report, data: Figures) -> str:
    """What a reader checks before trusting the decision, in one place."""
    judgement, policy = report.judgement, report.policy
    q = policy.latency.quantile
    level = f"P{q * 100:g}"
    queries = sum(len(o.queries) for o in report.observations)
    rows = [
        (f"Change in {level} latency", _estimate_line(_comparison(judgement, "latency_p95"))),
        ("Error rate", _estimate_line(_comparison(judgement, "error_rate"))),
        (
            "Quantile",
            text(
                f"{level} (q = {q:g}) of each version's latency histogram over every look, "
                f"interpolated within buckets as Prometheus does; a rise beyond "
                f"+{policy.latency.max_regression * 100:g}% is a regression"
            ),
        ),
        ("Decision", _decided(report, judgement)),
        (
            "Queries",
            f'<a href="#queries">{queries} PromQL quer{"y" if queries == 1 else "ies"}</a> '
            f"over {len(report.observations)} look(s), each with a copy button",
        ),
        ("Example traces", _examples(report)),
    ]
    if data.distributions:
        rows.insert(3, ("Looks judged", text(_sizes(data))))
    body = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<section id="proof"><h2>The proof</h2><dl class="proof">{body}</dl></section>'


def _sizes(data: Figures) -> str:
    return ", ".join(f"{d.version}: {d.requests:,} requests" for d in data.distributions)


def _decided(report: Report, judgement: Judgement | None) -> str:
    label = decision_label(report.decision)
    if judgement is None or not judgement.decided_by:
        return text(f"{label}: {report.reason}")
    decided = f"{text(label)}, decided by {code(judgement.decided_by)}"
    decider = _comparison(judgement, judgement.decided_by)
    if decider is None:
        return decided
    return f"{decided} ({text(statistic_text(decider))}, needed {threshold_text(decider)})"


def _examples(report: Report) -> str:
    lines = []
    for role, version in (
        ("baseline", report.target.baseline),
        ("candidate", report.target.candidate),
    ):
        item = next((e for e in report.evidence if e.version == version), None)
        if item is None:
            lines.append(
                f'{text(role)} {code(version)}: <span class="empty">no trace of it in this '
                "report</span>"
            )
        else:
            lines.append(f"{text(role)} {code(version)}: {_trace_summary(item)}")
    return "<br>".join(lines)


def _trace_summary(item: TraceEvidence) -> str:
    parts = [f"{item.kind}, {latency(item.latency_seconds)}"]
    infer = span_duration(item.spans)
    if infer is not None:
        parts.append(f"model.infer {latency(infer)}")
    return f"{link(code(item.trace_id), item.link)} ({text(', '.join(parts))})"


def _metrics(judgement: Judgement | None) -> str:
    if judgement is None:
        return (
            '<h2>Metrics</h2><p class="empty">No judgement was made: see the reason and notes.</p>'
        )
    if not judgement.comparisons:
        return '<h2>Metrics</h2><p class="empty">No metric was compared.</p>'
    header = ["Metric", "Baseline", "Candidate", "Change", "n (baseline / candidate)"]
    header += ["Test", "e-value / p", "e-value needed", "Verdict"]
    rows = []
    for c in judgement.comparisons:
        unit = metric_unit(c.metric)
        rows.append(
            [
                text(metric_label(c.metric)),
                format_value(c.baseline, unit),
                format_value(c.candidate, unit),
                text(change_text(c)),
                f"{c.baseline_n:,} / {c.candidate_n:,}",
                text(c.test) or MISSING,
                text(statistic_text(c)),
                threshold_text(c),
                text(c.verdict.value),
            ]
        )
    reasons = "".join(
        f"<li>{code(c.metric)}: {text(c.reason)}</li>" for c in judgement.comparisons if c.reason
    )
    return "<h2>Metrics</h2>" + table(header, rows) + (f"<ul>{reasons}</ul>" if reasons else "")


# ---------------------------------------------------------------------------- tables


def _looks(observations: Sequence[Observation]) -> str:
    if not observations:
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
        for look, o in enumerate(observations, 1)
    ]
    return "<h2>Looks</h2>" + table(header, rows)


def _weights(report: Report) -> str:
    if not report.weight_changes:
        return ""
    rows = [
        [utc(w.at), f"{w.weights.baseline}%", f"{w.weights.candidate}%", text(w.reason)]
        for w in report.weight_changes
    ]
    return "<h2>Weights</h2>" + table(["Time (UTC)", "Baseline", "Candidate", "Reason"], rows)


def _notes(report: Report) -> str:
    if not report.notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{text(n)}</li>" for n in report.notes) + "</ul>"


def _queries(observations: Sequence[Observation]) -> str:
    records = [(look, q) for look, o in enumerate(observations, 1) for q in o.queries]
    if not records:
        return '<h2 id="queries">PromQL queries</h2><p class="empty">No query text was kept.</p>'
    blocks = []
    for k, (look, query) in enumerate(records):
        note = f" · {text(query.note)}" if query.note else ""
        blocks.append(
            f'<div class="query"><button type="button" data-copy="query-{k}" hidden>Copy</button>'
            f"look {look} · <strong>{text(query.signal)}</strong> · evaluated at "
            f"{utc(query.evaluated_at)} · {query.series} series{note}"
            f'<pre id="query-{k}">{block(query.promql)}</pre></div>'
        )
    return f'<h2 id="queries">PromQL queries ({len(records)})</h2>' + "".join(blocks)
