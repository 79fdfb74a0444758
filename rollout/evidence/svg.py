"""SVG drawing for the HTML report: scales, ticks, axes and paths, as plain strings.

Pure functions on numbers. Every text drawn here is escaped here, so callers pass labels
that came from users as they are; coordinates that are not finite are never written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final, Protocol

from rollout.evidence.render_common import one_line

Point = tuple[float, float]
MUTED: Final = "#6b7280"
GRID: Final = "#e5e7eb"
INK: Final = "#111827"


class Scale(Protocol):
    def __call__(self, value: float) -> float: ...

    def ticks(self) -> list[float]: ...


@dataclass(frozen=True)
class Linear:
    """[lo, hi] -> [start, end] pixels; an empty domain maps to the middle."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        if span <= 0:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / span * (self.end - self.start)

    def ticks(self) -> list[float]:
        return nice_ticks(self.lo, self.hi)


# Tick steps a reader counts time in: seconds, minutes, hours, days.
TIME_STEPS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
DAY: Final = 86400


@dataclass(frozen=True)
class Seconds(Linear):
    """A linear time axis (seconds) whose ticks fall on whole seconds, minutes, hours, days."""

    def ticks(self) -> list[float]:
        span = self.hi - self.lo
        if not math.isfinite(span) or span <= 0:
            return [self.lo]
        step = next((float(s) for s in TIME_STEPS if span / s <= 6), None)
        if step is None:
            step = DAY * math.ceil(span / DAY / 6)
        first = math.ceil(self.lo / step - 1e-9)
        last = math.floor(self.hi / step + 1e-9)
        return [k * step for k in range(first, last + 1)]


@dataclass(frozen=True)
class Log10:
    """Positive [lo, hi] -> [start, end] pixels on a log scale; values outside sit at its ends."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        low, high = math.log10(self.lo), math.log10(self.hi)
        at = math.log10(min(max(value, self.lo), self.hi))
        if high <= low:
            return (self.start + self.end) / 2
        return self.start + (at - low) / (high - low) * (self.end - self.start)

    def ticks(self) -> list[float]:
        first, last = math.ceil(math.log10(self.lo)), math.floor(math.log10(self.hi))
        stride = max(1, math.ceil((last - first + 1) / 6))  # at most about six labels
        return [10.0**p for p in range(first, last + 1) if p % stride == 0]


def nice_step(span: float, count: int = 5) -> float:
    """The 1, 2 or 5 x 10^k step that cuts `span` into about `count` parts."""
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values from lo to hi (inclusive), `nice_step` apart."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def nice_top(value: float, count: int = 5) -> float:
    """An axis end at or above `value` on a tick (0 and below: 1)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    step = nice_step(value, count)
    return math.ceil(value / step - 1e-9) * step


@dataclass(frozen=True)
class Frame:
    """The plot area inside an SVG of `width` x `height` pixels."""

    width: int = 760
    height: int = 260
    left: int = 72
    right: int = 24
    top: int = 20
    bottom: int = 46

    @property
    def x0(self) -> float:
        return float(self.left)

    @property
    def x1(self) -> float:
        return float(self.width - self.right)

    @property
    def y0(self) -> float:
        """The bottom of the plot area (SVG's y grows downwards)."""
        return float(self.height - self.bottom)

    @property
    def y1(self) -> float:
        return float(self.top)


def num(value: float) -> str:
    """A coordinate: one decimal, no '-0.0'."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _finite(point: Point | None) -> bool:
    return point is not None and all(math.isfinite(v) for v in point)


def path_data(points: Sequence[Point | None]) -> str:
    """An SVG path's `d`: lines through the points; a None (or non-finite) point breaks it."""
    parts: list[str] = []
    pen_down = False
    for point in points:
        if point is None or not _finite(point):
            pen_down = False
            continue
        x, y = point
        parts.append(f"{'L' if pen_down else 'M'}{num(x)} {num(y)}")
        pen_down = True
    return " ".join(parts)


def attrs(**values: str | float | None) -> str:
    """Attributes in the order given, escaped; `class_` and `data_x` spelled `class`, `data-x`;
    None leaves one out."""
    out = []
    for key, value in values.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        text = num(value) if isinstance(value, float) else str(value)
        out.append(f'{name}="{escape(text, quote=True)}"')
    return " ".join(out)


def text(x: float, y: float, label: str, **extra: str | float | None) -> str:
    return f"<text {attrs(x=x, y=y, **extra)}>{escape(one_line(label))}</text>"


def line(x1: float, y1: float, x2: float, y2: float, **extra: str | float | None) -> str:
    return f"<line {attrs(x1=x1, y1=y1, x2=x2, y2=y2, **extra)}/>"


def rect(x: float, y: float, width: float, height: float, **extra: str | float | None) -> str:
    return f"<rect {attrs(x=x, y=y, width=width, height=height, **extra)}/>"


def polyline(
    points: Sequence[Point | None], colour: str, width: float = 2.0, **extra: str | float | None
) -> str:
    d = path_data(points)
    return f"<path {attrs(d=d, fill='none', stroke=colour, stroke_width=width, **extra)}/>"


def dots(points: Sequence[Point | None], colour: str, **extra: str | float | None) -> list[str]:
    """A marker per point: a single look still shows, and a reader sees where looks were."""
    return [
        f"<circle {attrs(cx=p[0], cy=p[1], r=3.5, fill=colour, **extra)}/>"
        for p in points
        if p is not None and _finite(p)
    ]


def axes(
    frame: Frame,
    x: Scale,
    y: Scale,
    *,
    x_label: Callable[[float], str],
    y_label: Callable[[float], str],
    x_title: str,
    y_title: str,
) -> list[str]:
    """Grid lines, tick labels and both axis titles."""
    out = []
    for value in y.ticks():
        at = y(value)
        out.append(line(frame.x0, at, frame.x1, at, stroke=GRID))
        out.append(text(frame.x0 - 6, at + 4, y_label(value), text_anchor="end", class_="tick"))
    for value in x.ticks():
        at = x(value)
        out.append(line(at, frame.y0, at, frame.y0 + 4, stroke=MUTED))
        out.append(text(at, frame.y0 + 17, x_label(value), text_anchor="middle", class_="tick"))
    out.append(line(frame.x0, frame.y0, frame.x1, frame.y0, stroke=MUTED))
    out.append(line(frame.x0, frame.y0, frame.x0, frame.y1, stroke=MUTED))
    middle_x, middle_y = (frame.x0 + frame.x1) / 2, (frame.y0 + frame.y1) / 2
    out.append(text(middle_x, frame.height - 8.0, x_title, text_anchor="middle", class_="title"))
    out.append(
        text(
            14.0,
            middle_y,
            y_title,
            text_anchor="middle",
            class_="title",
            transform=f"rotate(-90 14 {num(middle_y)})",
        )
    )
    return out


def legend(
    frame: Frame, entries: Sequence[tuple[str, str]], *, x: float | None = None
) -> list[str]:
    """Colour swatches and names along the top edge, left to right from `x` (the plot's left)."""
    out = []
    x = frame.x0 if x is None else x
    for label, colour in entries:
        out.append(rect(x, 4.0, 12.0, 10.0, fill=colour))
        out.append(text(x + 16, 13.0, label, class_="legend"))
        x += 28 + 7 * len(one_line(label))
    return out


def document(frame: Frame, title: str, body: Sequence[str], **extra: str) -> str:
    """One standalone <svg>, titled for screen readers."""
    # No xmlns: inline in HTML the parser puts <svg> in the SVG namespace by itself.
    head = attrs(
        viewBox=f"0 0 {frame.width} {frame.height}",
        role="img",
        aria_label=one_line(title),
        **extra,
    )
    return f"<svg {head}><title>{escape(one_line(title))}</title>" + "".join(body) + "</svg>"
