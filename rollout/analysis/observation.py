"""What one look at the metrics returns: plain values, shared by source, judge and report.

Counts are exact integers over a look's (start, end]: per counter series, its last
sample at or before `end` minus its last at or before `start` (a reset adds the new
value, a series appearing inside the look counts from 0), summed over series; see
`counters.py` and `prometheus.py`. No `increase()`, no extrapolation, no rounding:
consecutive looks partition the requests, each counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Bucket:
    """Cumulative histogram bucket: requests with latency <= `le` seconds."""

    le: float
    count: int


@lru_cache(maxsize=1 << 16, typed=True)
def shared_bucket(le: float, count: int) -> Bucket:
    """`Bucket(le, count)`, one object per pair among the 65,536 latest. A controller keeps every
    look's buckets of every rollout (128 a look on the kit's layout); most pairs recur (a
    look's count at a bound is often 0, or the same as at the next one), so shared buckets
    hold a 120-look history of 1000 rollouts in a fraction of the memory: see
    benchmarks/results/controller_scale.md."""
    return Bucket(le, count)


@dataclass(frozen=True)
class VersionCounts:
    """One version's exact counts over one look. None: the query returned no series for it."""

    requests: int | None
    errors: int | None
    buckets: tuple[Bucket, ...] | None  # ascending `le`, the last one +Inf


@dataclass(frozen=True)
class CustomValue:
    """A policy's custom metric, one value per version (None: no data, NaN/Inf dropped)."""

    name: str
    baseline: float | None
    candidate: float | None


@dataclass(frozen=True)
class QueryRecord:
    """Every PromQL query run, kept for the report."""

    signal: str  # "requests" (every status: errors too), "latency", "custom:<name>", "exemplars"
    promql: str
    evaluated_at: float  # unix seconds
    series: int  # how many series came back
    note: str = ""  # e.g. "empty result", "NaN dropped for candidate"


@dataclass(frozen=True)
class Observation:
    """Both versions' counts over [start, end] (unix seconds)."""

    start: float
    end: float
    baseline: VersionCounts
    candidate: VersionCounts
    custom: tuple[CustomValue, ...] = ()
    queries: tuple[QueryRecord, ...] = ()
    problems: tuple[str, ...] = field(default=())  # which query came back empty, NaN, ...


@dataclass(frozen=True)
class Exemplar:
    trace_id: str
    version: str
    value: float  # the observed latency in seconds
    timestamp: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Target:
    """What is being compared: the model and the two `model_version` label values."""

    model: str
    baseline: str
    candidate: str


class MetricsSourceError(Exception):
    """The source failed (unreachable, timeout, HTTP error, invalid answer). Not 'no data'."""


class MetricsSource(Protocol):
    def observe(
        self, target: Target, start: float, end: float, *, custom_window: float | None = None
    ) -> Observation:
        """Exact counts per version over (start, end], every query evaluated at `end`.

        `custom_window` (seconds, default `end - start`) is the range custom-metric
        queries see; it may be wider than the look and never changes the counts."""
        ...

    def observe_many(
        self,
        targets: Iterable[Target],
        start: float | Mapping[Target, float],
        end: float,
        *,
        custom_window: float | Mapping[Target, float] | None = None,
    ) -> dict[Target, Observation]:
        """`observe` for many targets at once (every rollout on one Prometheus), each over
        its own (start, end] (`start` one value for all or one per target), every query
        evaluated at `end`: one query per signal for them all, split per target."""
        ...

    def exemplars(
        self,
        target: Target,
        version: str,
        start: float,
        end: float,
        *,
        min_latency: float | None = None,
        errors_only: bool = False,
    ) -> tuple[Exemplar, ...]:
        """Exemplars of a version in [start, end], optionally slower than `min_latency`."""
        ...

    def close(self) -> None:
        """Release the source's connections."""
        ...
