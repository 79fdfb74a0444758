"""Kept spans to a JSON-lines file, and the span processor that holds a trace until it is decided.

One span per line, so a reader can follow the file while it grows and a crash loses
at most the last, partial line (`rollout.evidence.traces` skips it). The fields:
trace_id (32 hex), span_id (16 hex), parent_span_id (16 hex or null), name, kind,
start_ns, end_ns, attributes, status (UNSET|OK|ERROR), status_message, service.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

# Root-span attributes the middleware sets before ending the root span.
KEPT_ATTRIBUTE = "sampling.kept"
REASON_ATTRIBUTE = "sampling.reason"


def span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "service": span.resource.attributes.get("service.name"),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends spans to `path`, flushed after every batch so readers see whole traces."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self._file.write(lines)
                self._file.flush()
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if self._file is not None:
                self._file.flush()
        return True


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


class TailSamplingProcessor(SpanProcessor):
    """Buffers each trace's spans until its local root ends, then exports or drops them all.

    The root carries the decision in `sampling.kept`. Spans ending after their root
    (background work) follow the remembered decision; bounded memory either way.
    """

    def __init__(
        self, exporter: SpanExporter, max_pending: int = 10_000, max_decided: int = 10_000
    ) -> None:
        self._exporter = exporter
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._decided: OrderedDict[int, bool] = OrderedDict()
        self._max_pending = max_pending
        self._max_decided = max_decided

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            return
        trace_id = ctx.trace_id
        with self._lock:
            if not _is_local_root(span):
                late = self._decided.get(trace_id)
                if late is None:
                    self._pending.setdefault(trace_id, []).append(span)
                    if len(self._pending) > self._max_pending:
                        self._pending.popitem(last=False)  # an abandoned trace: drop it
                    return
                batch = [span] if late else []
            else:
                kept = bool((span.attributes or {}).get(KEPT_ATTRIBUTE, False))
                children = self._pending.pop(trace_id, [])
                self._decided[trace_id] = kept
                if len(self._decided) > self._max_decided:
                    self._decided.popitem(last=False)
                batch = [*children, span] if kept else []
        if batch:
            self._exporter.export(batch)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
