"""Read kept spans back from the JSON-lines files `rollout.instrument` writes.

A file may still be growing (the server appends while we read) or end in a line cut
short by a crash; such a line, and any line that is not a span, is skipped. A missing
file holds no spans: the caller notes the trace as unresolved rather than failing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.evidence.report import SpanTiming

INFER_SPAN = "model.infer"


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]

    @property
    def duration_seconds(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


def _record(raw: object) -> SpanRecord | None:
    if not isinstance(raw, dict):
        return None
    try:
        attributes = raw.get("attributes") or {}
        return SpanRecord(
            trace_id=str(raw["trace_id"]).lower(),
            span_id=str(raw["span_id"]),
            parent_span_id=raw.get("parent_span_id"),
            name=str(raw["name"]),
            start_ns=int(raw["start_ns"]),
            end_ns=int(raw["end_ns"]),
            status=str(raw.get("status", "UNSET")),
            attributes=dict(attributes) if isinstance(attributes, dict) else {},
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_spans(paths: Path | Sequence[Path]) -> Iterator[SpanRecord]:
    """Every whole span in `paths`, in file order."""
    for path in [paths] if isinstance(paths, Path) else paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        record = _record(json.loads(line))
                    except ValueError:  # a partial last line, or garbage
                        continue
                    if record is not None:
                        yield record
        except OSError:
            continue


def _normalise(trace_id: str) -> str:
    return trace_id.strip().lower()


def find_traces(
    paths: Path | Sequence[Path], trace_ids: Iterable[str]
) -> dict[str, tuple[SpanTiming, ...]]:
    """Several traces in one pass: trace ID -> its spans by start time (absent: not found)."""
    wanted = {_normalise(t) for t in trace_ids}
    found: dict[str, list[SpanRecord]] = {}
    for span in read_spans(paths):
        if span.trace_id in wanted:
            found.setdefault(span.trace_id, []).append(span)
    return {
        trace_id: tuple(
            SpanTiming(s.name, s.duration_seconds)
            for s in sorted(spans, key=lambda s: (s.start_ns, -s.end_ns))  # parents first
        )
        for trace_id, spans in found.items()
    }


def find_trace(paths: Path | Sequence[Path], trace_id: str) -> tuple[SpanTiming, ...]:
    """The trace's spans ordered by start time; () when no file holds it."""
    return find_traces(paths, [trace_id]).get(_normalise(trace_id), ())


def span_duration(spans: Sequence[SpanTiming], name: str = INFER_SPAN) -> float | None:
    """Seconds spent in spans called `name` (summed if repeated); None if there is none."""
    matching = [s.duration_seconds for s in spans if s.name == name]
    return sum(matching) if matching else None


def infer_duration(paths: Path | Sequence[Path], trace_id: str) -> float | None:
    """The trace's `model.infer` time in seconds, None when the trace or span is missing."""
    return span_duration(find_trace(paths, trace_id))
