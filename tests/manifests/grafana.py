"""What Grafana does with a dashboard's PromQL before Prometheus sees it, for the tests.

Every query of a dashboard (panel targets, annotations, template variables), and its text
after Grafana's substitution: template variables escaped as the Prometheus data source
escapes them (a multi-value or "All" selection becomes a regex of escaped values), and the
global variables (`$__interval`, `$__rate_interval`, `$__range`...) computed from the time
range, the panel's data points and the data source's scrape interval. Pure: the values of
`label_values(...)` come in through a function.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_DATA_POINTS = 1000  # a wide panel's width in pixels, Grafana's default for the points
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)
GLOBALS = frozenset(
    {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms"}
)


@dataclass(frozen=True)
class Query:
    """One PromQL text of a dashboard and where it sits."""

    dashboard: str
    where: str  # "panel 'Error %' A", "annotation 'Rollout decisions'", "variable version"
    expr: str
    instant: bool = False
    step: float | None = None  # an annotation's own step, seconds

    @property
    def is_variable(self) -> bool:
        return self.where.startswith("variable ")

    def metrics(self) -> set[str]:
        """The metric names it reads (of a variable: those of its series selector)."""
        if not self.is_variable:
            return metric_names(self.expr)
        match = LABEL_VALUES.match(self.expr.strip())
        return metric_names(match["selector"]) if match and match["selector"] else set()


@dataclass(frozen=True)
class Selection:
    """A template variable's current value(s), and whether Grafana regex-escapes them."""

    values: tuple[str, ...]
    multi: bool


@dataclass(frozen=True)
class TimeRange:
    start: float  # unix seconds
    end: float
    scrape_interval: float  # the data source's "Scrape interval" (its minimum step)

    @property
    def interval(self) -> float:
        """`$__interval`: the range over the panel's points, at least one scrape interval."""
        return max(self.scrape_interval, math.ceil((self.end - self.start) / MAX_DATA_POINTS))

    @property
    def rate_interval(self) -> float:
        """`$__rate_interval`: max($__interval + scrape interval, 4 x scrape interval)."""
        return max(self.interval + self.scrape_interval, 4 * self.scrape_interval)


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """File name -> dashboard, for every JSON file in `folder`."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.json"))
    }


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dashboard.get("templating", {}).get("list", [])
    return found


def _variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, Mapping) else query)


def queries(name: str, dashboard: Mapping[str, Any]) -> Iterator[Query]:
    """Every PromQL text the dashboard sends: panels' targets, annotations, variables."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} {target['refId']}"
            yield Query(name, where, target["expr"], instant=bool(target.get("instant")))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            step = duration_seconds(annotation["step"]) if "step" in annotation else None
            yield Query(name, f"annotation {annotation['name']!r}", annotation["expr"], step=step)
    for variable in variables(dashboard):
        if variable.get("type") == "query":
            yield Query(name, f"variable {variable['name']}", _variable_query(variable))


def duration_seconds(text: str) -> float:
    """A Grafana duration such as "60s", "5m" or "1h", in seconds."""
    match = re.fullmatch(r"(\d+)([smh])", text)
    if match is None:
        raise ValueError(f"not a duration like 60s, 5m or 1h: {text!r}")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


def referenced(text: str) -> set[str]:
    """The variable names `text` uses ($name, ${name}, ${name:format}, [[name]])."""
    return {next(g for g in match.groups() if g) for match in VARIABLE.finditer(text)}


def _regex_escape(value: str) -> str:
    # Grafana's prometheusSpecialRegexEscape: the backslash it adds is itself escaped, as it
    # lands inside a double-quoted PromQL string.
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def _plain_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def format_value(selection: Selection) -> str:
    """A selection as the Prometheus data source writes it into a query."""
    if not selection.multi:
        return _plain_escape(selection.values[0])
    escaped = [_regex_escape(v) for v in selection.values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _seconds(value: float) -> str:
    return f"{round(value)}s"


def global_values(time_range: TimeRange) -> dict[str, str]:
    span = time_range.end - time_range.start
    return {
        "__interval": _seconds(time_range.interval),
        "__interval_ms": str(round(time_range.interval * 1000)),
        "__rate_interval": _seconds(time_range.rate_interval),
        "__range": _seconds(span),
        "__range_s": str(round(span)),
        "__range_ms": str(round(span * 1000)),
    }


def interpolate(
    text: str, selections: Mapping[str, Selection], time_range: TimeRange | None = None
) -> str:
    """`text` with its variables replaced; an unknown variable is an error naming it."""
    known = {name: format_value(s) for name, s in selections.items()}
    if time_range is not None:
        known |= global_values(time_range)

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in known:
            raise KeyError(f"variable ${name} has no value (known: {sorted(known)})")
        return known[name]

    return VARIABLE.sub(replace, text)


def natural_key(value: str) -> list[tuple[int, int | str]]:
    """Natural order: digit runs compare as numbers (1.9.0 < 1.10.0)."""
    parts = re.split(r"(\d+)", value)
    return [(0, int(p)) if p.isdigit() else (1, p) for p in parts if p]


def sort_options(values: Sequence[str], sort: int) -> list[str]:
    """Grafana's variable sort: 0 none, 1/2 alphabetical, 7/8 natural (even: descending)."""
    if sort == 0:
        return list(values)
    key: Callable[[str], Any] = natural_key if sort in (7, 8) else str
    return sorted(values, key=key, reverse=sort % 2 == 0)


LabelValues = Callable[[str, str | None], list[str]]  # (label, series selector) -> values


def resolve(dashboard: Mapping[str, Any], label_values: LabelValues) -> dict[str, Selection]:
    """Each query variable's value on a fresh load: "All" where it may be, else the first
    option in its sort order; later variables see the earlier ones' values."""
    selections: dict[str, Selection] = {}
    for variable in variables(dashboard):
        if variable.get("type") != "query":
            continue
        text = _variable_query(variable)
        match = LABEL_VALUES.match(interpolate(text, selections).strip())
        if match is None:
            raise ValueError(f"variable {variable['name']}: not a label_values() query: {text}")
        options = sort_options(
            label_values(match["label"], match["selector"]), int(variable.get("sort", 0))
        )
        if not options:
            raise ValueError(f"variable {variable['name']}: {text} has no values")
        multi = bool(variable.get("multi") or variable.get("includeAll"))
        chosen = tuple(options) if variable.get("includeAll") else (options[0],)
        selections[variable["name"]] = Selection(chosen, multi)
    return selections


# Tokens of PromQL that are not metric names.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small scanner, not a parser)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    # Label lists of by / without / on / ignoring / group_left / group_right.
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text, flags=re.I
    )
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.groups()
        if call is None and name.lower() not in _KEYWORDS and not re.fullmatch(r"\d\w*", name):
            names.add(name)
    return names
