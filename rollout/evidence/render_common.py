"""How the renderers say numbers: units per metric, changes with intervals, decisions.

Shared by the Markdown, JUnit and terminal renderers so that all of them print the same
"P95 latency +42% (99% CI +31% .. +55%)" for the same Comparison.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from rollout.analysis.observation import VersionCounts
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.evidence.report import Report

MISSING: Final = "n/a"
GOOD_DECISIONS: Final = frozenset({"promoted", "pass"})
BAD_DECISIONS: Final = frozenset({"rolled_back", "fail", "aborted"})
_DECISION_LABELS: Final = {
    "promoted": "Promoted",
    "rolled_back": "Rolled back",
    "paused": "Paused",
    "aborted": "Aborted",
    "pass": "Pass",
    "fail": "Fail",
    "inconclusive": "Inconclusive",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class Unit(StrEnum):
    SECONDS = "seconds"
    RATE = "rate"
    PLAIN = "plain"


def counts_text(counts: VersionCounts) -> str:
    """A look's requests / errors (with the error rate) of one version."""
    requests = MISSING if counts.requests is None else f"{counts.requests:,}"
    errors = MISSING if counts.errors is None else f"{counts.errors:,}"
    if counts.requests and counts.errors is not None:
        errors += f" ({counts.errors / counts.requests * 100:.3g}%)"
    return f"{requests} / {errors}"


def one_line(text: str) -> str:
    """Control characters (newlines, ANSI escapes) collapsed: one clean line per value."""
    return " ".join(_CONTROL.sub(" ", text).split())


def decision_label(decision: str) -> str:
    return _DECISION_LABELS.get(decision, one_line(decision).replace("_", " ").capitalize())


def headline_parts(report: Report) -> tuple[str, str]:
    """('Rolled back', 'fraud-detector 2.4.0 (baseline 2.3.1)'); a gate's label says 'Gate'."""
    target = report.target
    label = decision_label(report.decision)
    if report.kind == "gate":
        label = f"Gate {label.lower()}"
    return label, f"{target.model} {target.candidate} (baseline {target.baseline})"


def headline(report: Report) -> str:
    """'Rolled back: fraud-detector 2.4.0 (baseline 2.3.1)', without any markup."""
    label, subject = headline_parts(report)
    return f"{label}: {subject}"


def _base_metric(metric: str) -> tuple[str, str]:
    prefix, _, rest = metric.partition(":")
    return (prefix, rest) if rest else ("", metric)


def metric_label(metric: str) -> str:
    """'latency_p95' -> 'P95 latency', 'slo:error_rate' -> 'SLO error rate', 'custom:x' -> 'x'."""
    prefix, base = _base_metric(metric)
    if prefix == "custom":
        return one_line(base)
    if match := re.fullmatch(r"latency_p(\d+(?:\.\d+)?)", base):
        label = f"P{match.group(1)} latency"
    else:
        label = one_line(base).replace("_", " ")
    return f"{prefix.upper()} {label}" if prefix else label


def metric_unit(metric: str) -> Unit:
    prefix, base = _base_metric(metric)
    if prefix == "custom":
        return Unit.PLAIN
    if base.startswith("latency"):
        return Unit.SECONDS
    if "error" in base:
        return Unit.RATE
    return Unit.PLAIN


def _non_finite(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def format_value(value: float | None, unit: Unit) -> str:
    """An estimate in the metric's unit: '102 ms', '1.25 s', '0.52%', '3.14'."""
    if value is None:
        return MISSING
    if (special := _non_finite(value)) is not None:
        return special
    if unit is Unit.SECONDS:
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit is Unit.RATE:
        return f"{value * 100:.3g}%"
    return f"{value:.4g}"


def _percent(ratio: float) -> str:
    if (special := _non_finite(ratio)) is not None:
        return special
    change = (ratio - 1.0) * 100
    return f"{change:+.1f}%" if abs(change) < 10 else f"{change:+.0f}%"


def _signed(value: float, unit: Unit) -> str:
    if (special := _non_finite(value)) is not None:
        return special
    if unit is Unit.SECONDS:
        return f"{value * 1000:+.3g} ms" if abs(value) < 1 else f"{value:+.3g} s"
    if unit is Unit.RATE:
        return f"{value * 100:+.3g} pp"
    return f"{value:+.4g}"


def is_ratio(comparison: Comparison) -> bool:
    return comparison.effect_name.endswith("ratio")


def _effect_text(value: float, comparison: Comparison) -> str:
    if is_ratio(comparison):
        return _percent(value)
    return _signed(value, metric_unit(comparison.metric))


def interval_text(comparison: Comparison) -> str | None:
    """'99% CI +31% .. +55%', or None without an interval."""
    if comparison.interval is None:
        return None
    low, high = (_effect_text(v, comparison) for v in comparison.interval)
    level = f"{comparison.confidence * 100:g}% " if comparison.confidence is not None else ""
    return f"{level}CI {low} .. {high}"


def change_text(comparison: Comparison) -> str:
    """'+42% (99% CI +31% .. +55%)'. Without an effect, the relative change of the estimates.
    A rate whose baseline is (near) zero changes by percentage points: '+6.67 pp'."""
    if (points := _points_text(comparison)) is not None:
        return points
    if comparison.effect is not None:
        text = _effect_text(comparison.effect, comparison)
    elif _both_finite(comparison) and comparison.baseline:
        assert comparison.baseline is not None and comparison.candidate is not None
        text = _percent(comparison.candidate / comparison.baseline)
    else:
        return MISSING
    interval = interval_text(comparison)
    return f"{text} ({interval})" if interval else text


NEAR_ZERO_RATE: Final = 0.001  # below 0.1%, a relative change says little: use points
WIDE_RATIO: Final = 10.0  # a ratio interval reaching x10 is said as a ratio, not in percent


def _points_text(comparison: Comparison) -> str | None:
    """A rate metric against a (near) zero baseline: the absolute difference in percentage
    points, and the ratio's interval as multipliers ('x0 .. x796'), not '-100% .. +79500%'."""
    if metric_unit(comparison.metric) is not Unit.RATE or not _both_finite(comparison):
        return None
    assert comparison.baseline is not None and comparison.candidate is not None
    interval = comparison.interval
    wide = interval is not None and is_ratio(comparison) and interval[1] >= WIDE_RATIO
    if comparison.baseline >= NEAR_ZERO_RATE and not wide:
        return None
    points = _signed(comparison.candidate - comparison.baseline, Unit.RATE)
    if interval is None or not is_ratio(comparison):
        return points
    level = f"{comparison.confidence * 100:g}% " if comparison.confidence is not None else ""
    low, high = (_multiplier(v) for v in interval)
    return f"{points} (ratio {level}CI {low} .. {high})"


def _multiplier(ratio: float) -> str:
    if (special := _non_finite(ratio)) is not None:
        return special
    return f"x{ratio:.2g}" if ratio < 10 else f"x{ratio:.0f}"


def _both_finite(comparison: Comparison) -> bool:
    values = (comparison.baseline, comparison.candidate)
    return all(v is not None and math.isfinite(v) for v in values)


def interval_covers_no_change(comparison: Comparison) -> bool:
    if comparison.interval is None:
        return False
    null = 1.0 if is_ratio(comparison) else 0.0
    low, high = comparison.interval
    return low <= null <= high


def change_phrase(comparison: Comparison) -> str:
    """One metric in a sentence: 'P95 latency -12% (99% CI -18% .. -5%)',
    'error rate unchanged (+1.5%, 99% CI -30% .. +45%)', 'error rate: no data'."""
    label = metric_label(comparison.metric)
    if comparison.verdict is Verdict.NO_DATA:
        return f"{label}: no data"
    if comparison.verdict is Verdict.INCONCLUSIVE:
        sizes = f"n = {comparison.baseline_n} / {comparison.candidate_n}"
        return f"{label} inconclusive ({sizes})"
    if comparison.verdict is Verdict.NO_REGRESSION and interval_covers_no_change(comparison):
        effect = comparison.effect
        point = f"{_effect_text(effect, comparison)}, " if effect is not None else ""
        return f"{label} unchanged ({point}{interval_text(comparison)})"
    if comparison.effect is None and comparison.interval is None:
        unit = metric_unit(comparison.metric)
        values = " -> ".join(
            format_value(v, unit) for v in (comparison.baseline, comparison.candidate)
        )
        change = change_text(comparison)
        return f"{label} {values}" + (f" ({change})" if change != MISSING else "")
    return f"{label} {change_text(comparison)}"


def change_summary(judgement: Judgement | None) -> str:
    """Every metric's phrase, the deciding one first; '' without a judgement."""
    if judgement is None or not judgement.comparisons:
        return ""
    ordered = sorted(judgement.comparisons, key=lambda c: c.metric != judgement.decided_by)
    return ", ".join(change_phrase(c) for c in ordered)


def statistic_text(comparison: Comparison) -> str:
    """'e = 310 (p = 0.0032)', 'p = 0.41', or n/a."""
    parts = []
    if comparison.e_value is not None:
        parts.append(f"e = {_number(comparison.e_value)}")
    if comparison.p_value is not None:
        parts.append(f"p = {_number(comparison.p_value, digits=2)}")
    if not parts and comparison.statistic is not None:
        parts.append(f"statistic = {_number(comparison.statistic)}")
    if len(parts) == 2:
        return f"{parts[0]} ({parts[1]})"
    return parts[0] if parts else MISSING


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return MISSING
    special = _non_finite(value)
    return special if special is not None else f"{value:.{digits}g}"


def threshold_text(comparison: Comparison) -> str:
    return _number(comparison.threshold)


def utc(timestamp: float) -> str:
    """Unix seconds -> '2024-05-01 12:00:00 UTC'; n/a for unset (0) or unreadable times."""
    if not math.isfinite(timestamp) or timestamp <= 0:
        return MISSING
    try:
        moment = datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return MISSING
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return MISSING
    if seconds >= 3600:
        return f"{seconds / 3600:.3g}h"
    if seconds >= 60:
        return f"{seconds / 60:.3g}m"
    return f"{seconds:.3g}s"


def latency(value: float | None) -> str:
    return format_value(value, Unit.SECONDS)
