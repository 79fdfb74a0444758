"""report.html's plots and trace evidence: the report's figures drawn as inline SVG figures."""

from __future__ import annotations

from collections.abc import Sequence

from rollout.evidence import charts
from rollout.evidence.figures import Breakdown, Figures
from rollout.evidence.html_text import code, link, table, text, tone
from rollout.evidence.render_common import decision_label, latency, metric_label, utc
from rollout.evidence.report import Report, WeightChange
from rollout.evidence.traces import span_duration


def _figure(svg_text: str, caption: str, name: str) -> str:
    return f'<figure id="{name}">{svg_text}<figcaption>{caption}</figcaption></figure>'


def _version_colours(report: Report) -> dict[str, str]:
    return {
        report.target.baseline: charts.BASELINE_COLOUR,
        report.target.candidate: charts.CANDIDATE_COLOUR,
    }


def plots(report: Report, data: Figures) -> str:
    out = ["<h2>Plots</h2>", _distribution_figure(report, data)]
    axis = charts.TimeAxis.covering(_times(report))
    if axis is None or not report.observations:
        out.append('<p class="empty">No look at the metrics to plot over time.</p>')
        return "\n".join(out)
    marks = _marks(report)
    level = f"P{report.policy.latency.quantile * 100:g}"
    target, looks = report.target, data.looks
    latencies = (
        charts.Series(
            target.baseline,
            charts.BASELINE_COLOUR,
            tuple((p.at, p.baseline_latency) for p in looks),
        ),
        charts.Series(
            target.candidate,
            charts.CANDIDATE_COLOUR,
            tuple((p.at, p.candidate_latency) for p in looks),
        ),
    )
    chart = charts.TimeChart(
        f"{level} latency per look", f"{level} (ms)", charts.ms_label, latencies, marks
    )
    caption = (
        f"Each look's own {level} per version (that look's buckets only), at the look's end; "
        "dashed lines are weight changes, the solid line the decision."
    )
    out.append(_figure(charts.time_chart(chart, axis), caption, "latency-over-time"))
    errors = (
        charts.Series(
            target.baseline,
            charts.BASELINE_COLOUR,
            tuple((p.at, p.baseline_error_rate) for p in looks),
        ),
        charts.Series(
            target.candidate,
            charts.CANDIDATE_COLOUR,
            tuple((p.at, p.candidate_error_rate) for p in looks),
        ),
    )
    chart = charts.TimeChart(
        "error rate per look", "error rate", _percent, errors, marks, least_top=0.01
    )
    caption = "Each look's own error rate per version, with the same marks."
    out.append(_figure(charts.time_chart(chart, axis), caption, "errors-over-time"))
    out.append(_e_value_figure(data, marks, axis))
    return "\n".join(out)


def _percent(rate: float) -> str:
    return f"{rate * 100:g}%"


def _distribution_figure(report: Report, data: Figures) -> str:
    if not data.distributions:
        return '<p class="empty">No latency histogram to plot.</p>'
    q = report.policy.latency.quantile
    chart = charts.distribution_chart(
        data.distributions, q, [charts.ROLE_COLOURS[d.role] for d in data.distributions]
    )
    caption = (
        "Latency of every request over all looks, per version, from the histogram buckets "
        "(straight between bucket bounds, as Prometheus interpolates); the dashed lines mark "
        f"each version's P{q * 100:g}."
    )
    return _figure(chart, caption, "latency-distribution")


def _times(report: Report) -> list[float]:
    times = [report.started_at, report.finished_at]
    times += [o.end for o in report.observations] + [o.start for o in report.observations]
    times += [w.at for w in report.weight_changes]
    return times


def _marks(report: Report) -> list[charts.Mark]:
    """A mark per weight change and one for the decision; a weight change made by the decision
    (the rollback's 100/0, the promotion's 0/100) is named on the decision's mark."""
    if report.finished_at <= 0:
        return [_step(w) for w in report.weight_changes]
    span = max(report.finished_at - report.started_at, 0.0)
    close = max(1.0, 0.01 * span)
    steps = [w for w in report.weight_changes if abs(w.at - report.finished_at) > close]
    merged = [w for w in report.weight_changes if w not in steps]
    label = decision_label(report.decision)
    if merged:
        last = merged[-1].weights
        label += f" ({last.baseline}/{last.candidate})"
    colour = {"good": charts.GOOD, "bad": charts.BAD}.get(tone(report.decision), charts.NEUTRAL)
    return [*(_step(w) for w in steps), charts.Mark(report.finished_at, label, "decision", colour)]


def _step(change: WeightChange) -> charts.Mark:
    return charts.Mark(change.at, f"{change.weights.baseline}/{change.weights.candidate}", "step")


def _e_value_figure(data: Figures, marks: Sequence[charts.Mark], axis: charts.TimeAxis) -> str:
    if not data.e_values:
        return '<p class="empty">This judge reports no e-values.</p>'
    series, thresholds = [], []
    times = [p.at for p in data.looks]
    for k, e in enumerate(data.e_values):
        colour = charts.METRIC_COLOURS[k % len(charts.METRIC_COLOURS)]
        name = metric_label(e.metric)
        series.append(charts.Series(name, colour, tuple(zip(times, e.values, strict=True))))
        if e.threshold is not None:
            thresholds.append(
                charts.Threshold(e.threshold, f"{name}: needed {e.threshold:.3g}", colour)
            )
    chart = charts.TimeChart(
        "e-values per look against their thresholds",
        "e-value (log scale)",
        charts.power_label,
        series,
        marks,
        thresholds,
        log=True,
    )
    caption = (
        "Each test's e-value (the evidence of a regression; its largest so far) after every look, "
        "recomputed from the report's looks by the same judge; a test fails when its line reaches "
        "its dashed threshold."
    )
    return _figure(charts.time_chart(chart, axis), caption, "e-values")


def traces(report: Report, data: Figures) -> str:
    head = "<h2>Trace evidence</h2>"
    if not report.evidence:
        return head + '<p class="empty">No trace in this report (see the notes).</p>'
    rows: list[Breakdown] = []
    if data.baseline_typical is not None:
        rows.append(data.baseline_typical)
    rows += data.traces
    chart = charts.breakdown_chart(rows, _version_colours(report))
    baseline = (
        "the first bar is the baseline's typical breakdown (the median of its traces)"
        if data.baseline_typical is not None
        else f"no trace of the baseline {report.target.baseline} is in this report to set "
        "beside them"
    )
    caption = text(
        "Where each trace's time went, span by span, on one scale: "
        f"{baseline}. A bar without spans is the exemplar's latency alone."
    )
    header = ["Trace", "Version", "Kind", "Latency", "model.infer", "Time (UTC)"]
    table_rows = [
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
    return head + _figure(chart, caption, "trace-breakdown") + table(header, table_rows)
