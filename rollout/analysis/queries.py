"""PromQL for one look: one query for both signals and both versions of every target
(every rollout on one Prometheus), label values escaped.

Pure: builds strings from the policy's metric/label names and a `Target`. Every
label value goes through `string_literal` (PromQL double-quoted string) and, for
`=~` matchers, through `regex_literal` first (RE2 escaping), so a version such as
`2.4.0"} or vector(1) #` is matched literally and cannot change the query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rollout.analysis.observation import Target
from rollout.spec import CustomMetric, MetricNames

# Go-style escapes that PromQL's string lexer understands (strconv.Unquote semantics).
_SHORT_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def string_literal(value: str) -> str:
    """`value` as a PromQL double-quoted string literal that decodes back to exactly `value`."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"label value {value!r} holds a lone surrogate; it is not UTF-8")
        elif code < 0x20 or code == 0x7F or not char.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def regex_literal(value: str) -> str:
    """RE2 pattern matching exactly `value`: every ASCII non-alphanumeric is backslashed
    (RE2 reads a backslashed ASCII punctuation or space character as itself)."""
    return "".join(
        "\\" + char if char.isascii() and not char.isalnum() and char != "_" else char
        for char in value
    )


def range_literal(seconds: float) -> str:
    """A PromQL range duration: whole seconds as `60s`, otherwise milliseconds."""
    if seconds <= 0:
        raise ValueError(f"a window must be positive, got {seconds}")
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _matcher(label: str, value: str) -> str:
    return f"{label}={string_literal(value)}"


def versions_matcher(label: str, versions: tuple[str, ...]) -> str:
    """`label=~"^(?:a|b)$"` with each version escaped as a regex and as a string."""
    alternatives = "|".join(regex_literal(v) for v in versions)
    return f"{label}=~{string_literal(f'^(?:{alternatives})$')}"


def target_selector(metrics: MetricNames, target: Target, *extra: str) -> str:
    """Label matchers (with braces) for the model and both versions."""
    matchers = [
        _matcher(metrics.model_label, target.model),
        versions_matcher(metrics.version_label, (target.baseline, target.candidate)),
        *extra,
    ]
    return "{" + ",".join(matchers) + "}"


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def batch_selector(metrics: MetricNames, targets: Sequence[Target]) -> str:
    """Label matchers (with braces) for every target's model and versions at once.

    One model: `model_name="m"` (the same selector as `target_selector`); several:
    `model_name=~"^(?:m1|m2)$"`. The version matcher holds every target's versions, so
    the answer may hold other (model, version) pairs: the source keeps each target's own.
    """
    if not targets:
        raise ValueError("a batch needs at least one target")
    models = _unique(t.model for t in targets)
    versions = _unique(v for t in targets for v in (t.baseline, t.candidate))
    if len(models) == 1:
        model = _matcher(metrics.model_label, models[0])
    else:
        model = versions_matcher(metrics.model_label, models)
    return "{" + model + "," + versions_matcher(metrics.version_label, versions) + "}"


def version_selector(metrics: MetricNames, model: str, version: str) -> str:
    """Label matchers (with braces) for one version of the model."""
    matchers = (_matcher(metrics.model_label, model), _matcher(metrics.version_label, version))
    return "{" + ",".join(matchers) + "}"


# How far before a look's start the range reaches: the counts need each series' last
# sample at or before `start`, and a series scraped at all is scraped at least this
# often. 5 minutes is Prometheus' staleness period (`--query.lookback-delta`): the
# same horizon an instant query uses to call a series current. A series whose last
# sample before the look is older than this counts as appearing inside the look.
LOOKBACK_SECONDS = 300.0


@dataclass(frozen=True)
class SignalQueries:
    """The queries of one look: raw samples (range vectors), not `increase()`.

    Evaluated at the look's end, each returns every matching series with its samples
    over `(start - LOOKBACK_SECONDS, end]`; the source differences them per series.
    `combined` is what is sent: both signals in one selector (split by `__name__`), so
    a read costs one query whatever the signals; the other two are what each signal
    means, for the report (a reader reruns one signal).
    """

    requests: str  # the requests counter, every status, both versions
    latency: str  # the histogram's `_bucket` series, both versions
    combined: str  # both, one selector on `__name__`


def signal_queries(metrics: MetricNames, target: Target, window_seconds: float) -> SignalQueries:
    """Range-vector selectors reaching `window_seconds + LOOKBACK_SECONDS` back from the end.

    No aggregation: errors are the series whose status label is the policy's error
    status (split in Python), and each series' rise is computed on its own, so pods,
    routes and counter resets never mix before the arithmetic.
    """
    return batch_queries(metrics, (target,), window_seconds)


def batch_queries(
    metrics: MetricNames,
    targets: Sequence[Target],
    window_seconds: float,
    lookback: float = LOOKBACK_SECONDS,
) -> SignalQueries:
    """`signal_queries` for many targets at once: the same queries whatever their number,
    `window_seconds` being the longest look among them. One target: the same strings as
    `signal_queries`. `lookback`: how far before the looks' start the range reaches (less
    when the source kept the earlier samples, `last_samples.py`)."""
    if window_seconds <= 0:
        raise ValueError(f"a window must be positive, got {window_seconds}")
    reach = range_literal(window_seconds + lookback)
    selector = batch_selector(metrics, targets)
    return SignalQueries(
        requests=f"{metrics.requests}{selector}[{reach}]",
        latency=f"{metrics.latency}_bucket{selector}[{reach}]",
        combined=f"{{{_names(metrics)},{selector[1:]}[{reach}]",
    )


def _names(metrics: MetricNames) -> str:
    """A matcher of both signals' series names: the requests counter and the buckets."""
    return versions_matcher("__name__", (metrics.requests, f"{metrics.latency}_bucket"))


def live_query(metrics: MetricNames, targets: Sequence[Target]) -> str:
    """The (metric, model, version) groups that still have a series at the evaluation time:
    an instant selector sees a series whose last sample is within the staleness period.

    Of a histogram only the `+Inf` buckets (`le` empty matches the requests counter, which
    has none): a version's histogram is there while its `+Inf` bucket is (without one it is
    no histogram, `prometheus.py`), and 1 series in 60 takes a tenth of the time at 1000
    rollouts (0.2 s, not 1.6 s)."""
    names = _names(metrics)
    selector = batch_selector(metrics, targets)
    by = f"__name__, {metrics.model_label}, {metrics.version_label}"
    return f'count by ({by}) ({{{names},le=~"|\\\\+Inf",{selector[1:]})'


def custom_query(
    metric: CustomMetric, metrics: MetricNames, model: str, version: str, window_seconds: float
) -> str:
    """The policy's custom query for one version.

    `{version_selector}` becomes the braced matchers `{model_name="m",model_version="v"}`
    (written `{{version_selector}}` it means the same), `{window}` the look's range.
    """
    selector = version_selector(metrics, model, version)
    query = metric.query.replace("{{version_selector}}", "{version_selector}")
    query = query.replace("{window}", range_literal(window_seconds))
    return query.replace("{version_selector}", selector)


def exemplar_selector(metrics: MetricNames, model: str, version: str, *, errors_only: bool) -> str:
    """Series whose exemplars name a version's slow requests (histogram) or failed ones."""
    if errors_only:
        status = _matcher(metrics.status_label, metrics.error_status)
        selector = version_selector(metrics, model, version)[:-1] + "," + status + "}"
        return f"{metrics.requests}{selector}"
    return f"{metrics.latency}_bucket{version_selector(metrics, model, version)}"
