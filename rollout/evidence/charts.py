"""The HTML report's plots as inline SVG: latency CDFs, figures over time, span breakdowns.

Pure: plain values in (see `figures.py`), an <svg> string out. Elements a reader or a test
looks for carry a class: `cdf`, `quantile-marker`, `series`, `threshold`, `step`, `decision`,
`stage`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from rollout.evidence import svg
from rollout.evidence.figures import OTHER, STAGES, Breakdown, Distribution
from rollout.evidence.render_common import duration, latency, utc

BASELINE_COLOUR: Final = "#2563eb"
CANDIDATE_COLOUR: Final = "#ea580c"
ROLE_COLOURS: Final = {"baseline": BASELINE_COLOUR, "candidate": CANDIDATE_COLOUR}
# e-value lines, one colour per metric (never a version's or a stage's colour)
METRIC_COLOURS: Final = ("#db2777", "#0d9488", "#65a30d", "#0891b2", "#a16207", "#9333ea")
STAGE_COLOURS: Final = {
    STAGES[0]: "#059669",
    STAGES[1]: "#7c3aed",
    STAGES[2]: "#eab308",
    OTHER: "#9ca3af",
}
GOOD: Final = "#16a34a"
BAD: Final = "#dc2626"
NEUTRAL: Final = "#d97706"
LOG_HEADROOM: Final = 1e6  # a log axis reaches at most this far above its highest threshold
TAIL_SHARE: Final = 0.995  # the CDF's x-axis ends where both versions reach this share


# ---------------------------------------------------------------------------- latency CDF


def cdf_x_end(distributions: Sequence[Distribution]) -> float:
    """Where the CDF plot's x-axis ends: past each version's tail (`TAIL_SHARE`) and 1.25x its
    quantile, on a round number."""
    ends = []
    for d in distributions:
        tail = next((x for x, share in d.points if share >= TAIL_SHARE), None)
        ends.append(tail if tail is not None else (d.points[-1][0] if d.points else 0.0))
        if d.quantile is not None:
            ends.append(d.quantile * 1.25)
    return svg.nice_top(max(ends, default=0.0))


def clip(points: Sequence[tuple[float, float]], x_end: float) -> list[tuple[float, float]]:
    """The curve up to x_end, ending exactly at x_end (interpolated)."""
    out: list[tuple[float, float]] = []
    for x, y in points:
        if x <= x_end:
            out.append((x, y))
            continue
        if out:
            (x0, y0) = out[-1]
            out.append((x_end, y0 + (y - y0) * (x_end - x0) / (x - x0)))
        break
    return out


def distribution_chart(
    distributions: Sequence[Distribution], quantile: float, colours: Sequence[str]
) -> str:
    """Each version's CDF over every look, its quantile marked where the CDF crosses it."""
    frame = svg.Frame(height=300)
    x = svg.Linear(0.0, cdf_x_end(distributions), frame.x0, frame.x1)
    y = svg.Linear(0.0, 1.0, frame.y0, frame.y1)
    level = f"P{quantile * 100:g}"
    body = svg.axes(
        frame,
        x,
        y,
        x_label=ms_label,
        y_label=lambda v: f"{v * 100:g}%",
        x_title="latency (ms)",
        y_title="requests at or below",
    )
    at_q = y(quantile)
    body.append(svg.line(frame.x0, at_q, frame.x1, at_q, stroke=svg.MUTED, stroke_dasharray="4 4"))
    body.append(svg.text(frame.x0 + 4, at_q - 5, level, class_="tick"))
    drawn = list(zip(distributions, colours, strict=True))
    for k, (d, colour) in enumerate(drawn):
        points = [(x(px), y(py)) for px, py in clip(d.points, x.hi)]
        # the first curve wider: where the versions agree it still shows around the second
        width = 4.0 if k == 0 and len(drawn) > 1 else 2.0
        body.append(svg.polyline(points, colour, width, class_="cdf", data_version=d.version))
    markers = [(d, colour, d.quantile) for d, colour in drawn if d.quantile is not None]
    labels_at = max((x(min(q, x.hi)) for _, _, q in markers), default=frame.x0)
    for k, (d, colour, value) in enumerate(markers):
        at = x(min(value, x.hi))
        body.append(
            svg.line(
                at,
                frame.y0,
                at,
                at_q,
                stroke=colour,
                stroke_width=1.5,
                stroke_dasharray="5 3",
                class_="quantile-marker",
                data_version=d.version,
                data_seconds=repr(value),
            )
        )
        # right of the markers, low: the plot's empty corner below the curves' knee
        label = f"{d.version} {level} {latency(value)}"
        y_label = frame.y0 - 10 - 16 * (len(markers) - 1 - k)
        body.append(svg.text(labels_at + 6, y_label, label, fill=colour, class_="marker"))
    entries = [(f"{d.version} ({d.requests:,} requests)", colour) for d, colour in drawn]
    body += svg.legend(frame, entries)
    title = f"latency distribution per version with the {level} marked"
    return svg.document(frame, title, body, class_="chart")


def ms_label(seconds: float) -> str:
    return f"{seconds * 1000:g}"


# ---------------------------------------------------------------------------- over time


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: tuple[tuple[float, float | None], ...]  # (unix seconds, value or None: a gap)


@dataclass(frozen=True)
class Mark:
    """A moment on the time axis: a weight change or the decision."""

    at: float
    label: str
    kind: str  # "step" or "decision"
    colour: str = svg.MUTED


@dataclass(frozen=True)
class Threshold:
    value: float
    label: str
    colour: str


@dataclass(frozen=True)
class TimeAxis:
    """The span every time chart of one report shares, so their marks line up."""

    start: float
    end: float

    @classmethod
    def covering(cls, times: Sequence[float]) -> TimeAxis | None:
        usable = [t for t in times if math.isfinite(t) and t > 0]
        if not usable:
            return None
        return cls(min(usable), max(usable))


@dataclass(frozen=True)
class TimeChart:
    title: str
    y_title: str
    y_label: Callable[[float], str]
    series: Sequence[Series]
    marks: Sequence[Mark] = ()
    thresholds: Sequence[Threshold] = ()
    log: bool = False
    least_top: float = 0.0  # the value axis reaches at least this (a flat 0% still has a scale)


def time_chart(chart: TimeChart, axis: TimeAxis) -> str:
    """Lines over time (seconds since the axis' start), the marks as vertical lines."""
    frame = svg.Frame(height=280, top=40)
    x = svg.Seconds(0.0, max(axis.end - axis.start, 1.0), frame.x0, frame.x1)
    y = _value_scale(chart, frame)
    body = svg.axes(
        frame,
        x,
        y,
        x_label=duration,
        y_label=chart.y_label,
        x_title=f"time since {utc(axis.start)}",
        y_title=chart.y_title,
    )
    body += _marks(chart.marks, frame, lambda t: x(t - axis.start))
    body += _thresholds(chart.thresholds, frame, y)
    for series in chart.series:
        points = [None if v is None else (x(t - axis.start), y(v)) for t, v in series.points]
        body.append(svg.polyline(points, series.colour, class_="series", data_series=series.label))
        body += svg.dots(points, series.colour)
        if chart.log:
            body += _last_value(series, x, y, axis)
    body += svg.legend(frame, [(s.label, s.colour) for s in chart.series])
    return svg.document(frame, chart.title, body, class_="chart")


def _last_value(series: Series, x: svg.Scale, y: svg.Scale, axis: TimeAxis) -> list[str]:
    """The series' latest value written beside its last point (a log axis may clip it)."""
    last = next(((t, v) for t, v in reversed(series.points) if v is not None), None)
    if last is None:
        return []
    at, value = last
    return [
        svg.text(
            x(at - axis.start) - 6,
            y(value) + 14,
            f"{value:.3g}",
            text_anchor="end",
            fill=series.colour,
            class_="marker",
        )
    ]


def _marks(marks: Sequence[Mark], frame: svg.Frame, x: Callable[[float], float]) -> list[str]:
    """Vertical lines, labelled above the plot; neighbouring steps alternate two rows."""
    out = []
    for k, mark in enumerate(marks):
        at = x(mark.at)
        step = mark.kind == "step"
        out.append(
            svg.line(
                at,
                frame.y0,
                at,
                frame.y1 - 4,
                stroke=mark.colour,
                stroke_width=1.0 if step else 2.0,
                stroke_dasharray="3 3" if step else None,
                class_=mark.kind,
            )
        )
        lift = 12 * (k % 2) if step else 0
        right_half = at > (frame.x0 + frame.x1) / 2
        out.append(
            svg.text(
                at - 3 if right_half else at + 3,
                frame.y1 - 8 - lift,
                mark.label,
                text_anchor="end" if right_half else "start",
                fill=mark.colour,
                class_="mark",
            )
        )
    return out


def _thresholds(thresholds: Sequence[Threshold], frame: svg.Frame, y: svg.Scale) -> list[str]:
    """Dashed horizontal lines, labelled at the left (the lines' latest values are written at
    the right); labels alternate above and below their line, so close thresholds stay readable."""
    out = []
    for k, threshold in enumerate(sorted(thresholds, key=lambda t: t.value, reverse=True)):
        at = y(threshold.value)
        out.append(
            svg.line(
                frame.x0,
                at,
                frame.x1,
                at,
                stroke=threshold.colour,
                stroke_width=1.5,
                stroke_dasharray="8 4",
                class_="threshold",
            )
        )
        out.append(
            svg.text(
                frame.x0 + 4,
                at - 4 if k % 2 == 0 else at + 13,
                threshold.label,
                fill=threshold.colour,
                class_="marker",
            )
        )
    return out


def power_label(value: float) -> str:
    """A log axis' tick: '0.1', '1', '1000', then '1e4', '1e11'."""
    if 0.001 <= value < 1e4:
        return f"{value:g}"
    return f"1e{round(math.log10(value))}"


def _value_scale(chart: TimeChart, frame: svg.Frame) -> svg.Scale:
    values = [v for s in chart.series for _, v in s.points if v is not None and math.isfinite(v)]
    values += [t.value for t in chart.thresholds if math.isfinite(t.value)]
    if chart.log:
        positive = [v for v in values if v > 0]
        lo = max(min([0.1, *positive]), 1e-3)  # e-values start at 1: below is "no evidence"
        hi = max([10.0, *positive])
        needed = [t.value for t in chart.thresholds if t.value > 0 and math.isfinite(t.value)]
        # An e-value of 1e67 would flatten everything near the threshold: the axis ends 10^6
        # above it, a line beyond runs along the top and its last value is written beside it.
        hi = min(hi, max(needed, default=1e6) * LOG_HEADROOM)
        return svg.Log10(
            10.0 ** math.floor(math.log10(lo)),
            10.0 ** math.ceil(math.log10(hi)),
            frame.y0,
            frame.y1,
        )
    top = svg.nice_top(max([chart.least_top, *values]))
    return svg.Linear(0.0, top, frame.y0, frame.y1)


# ---------------------------------------------------------------------------- span breakdown

ROW: Final = 28
LABEL_WIDTH: Final = 250


def breakdown_chart(rows: Sequence[Breakdown], colours: dict[str, str]) -> str:
    """One bar per trace, its stages stacked left to right on one shared scale; a trace without
    spans is an outline of its latency."""
    # the right margin holds each bar's total
    frame = svg.Frame(
        height=48 + ROW * len(rows) + 40, left=LABEL_WIDTH, right=72, top=34, bottom=40
    )
    longest = max((r.total or 0.0 for r in rows), default=0.0)
    x = svg.Linear(0.0, svg.nice_top(longest), frame.x0, frame.x1)
    body = []
    for value in x.ticks():
        at = x(value)
        body.append(svg.line(at, frame.y1 - 4, at, frame.y0, stroke=svg.GRID))
        body.append(
            svg.text(at, frame.y0 + 16, ms_label(value), text_anchor="middle", class_="tick")
        )
    body.append(
        svg.text(
            (frame.x0 + frame.x1) / 2,
            frame.height - 8.0,
            "time in the request (ms)",
            text_anchor="middle",
            class_="title",
        )
    )
    for k, row in enumerate(rows):
        top = frame.y1 + k * ROW
        colour = colours.get(row.version, svg.INK)
        body.append(
            svg.text(
                frame.x0 - 8, top + 17, row.label, text_anchor="end", fill=colour, class_="row"
            )
        )
        body += _bar(row, x, top)
    stages = [(name, STAGE_COLOURS[name]) for name in (*STAGES, OTHER)]
    body += svg.legend(frame, stages, x=8.0)
    title = "span breakdown of each trace in the report"
    return svg.document(frame, title, body, class_="chart")


def _bar(row: Breakdown, x: svg.Linear, top: float) -> list[str]:
    height, y = float(ROW - 8), top + 4
    if not row.stages:
        if not row.total:
            return [svg.text(x.start + 4, top + 17, "no latency or spans", class_="tick")]
        width = x(row.total) - x.start
        return [
            svg.rect(
                x.start, y, width, height, fill="none", stroke=svg.MUTED, stroke_dasharray="3 3"
            ),
            svg.text(
                x.start + 6, top + 17, f"{latency(row.total)}, no spans read back", class_="tick"
            ),
        ]
    out = []
    left = 0.0
    for name, seconds in row.stages:
        if seconds <= 0:
            continue
        start, end = x(left), x(left + seconds)
        rect = svg.attrs(
            x=start,
            y=y,
            width=max(end - start, 0.5),
            height=height,
            fill=STAGE_COLOURS[name],
            class_="stage",
            data_stage=name,
            data_seconds=repr(seconds),
        )
        out.append(f"<rect {rect}><title>{escape(name)}: {latency(seconds)}</title></rect>")
        left += seconds
    out.append(svg.text(x(left) + 4, top + 17, latency(row.total), class_="tick"))
    return out
