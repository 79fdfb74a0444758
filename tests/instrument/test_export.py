"""The tail-sampling processor and the JSON-lines exporter on the real OpenTelemetry SDK."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from rollout.instrument.export import (
    KEPT_ATTRIBUTE,
    JsonLinesSpanExporter,
    TailSamplingProcessor,
)


def _tracer(spans_file: Path) -> tuple[trace.Tracer, TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(TailSamplingProcessor(JsonLinesSpanExporter(spans_file)))
    return provider.get_tracer("test"), provider


def _request(tracer: trace.Tracer, keep: bool) -> str:
    with tracer.start_as_current_span("POST /predict") as root:
        with tracer.start_as_current_span("model.infer", attributes={"request_id": "r1"}):
            pass
        root.set_attribute(KEPT_ATTRIBUTE, keep)
        return format(root.get_span_context().trace_id, "032x")


def test_a_kept_trace_is_written_whole_and_a_dropped_one_not_at_all(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    tracer, provider = _tracer(spans_file)
    kept = _request(tracer, keep=True)
    dropped = _request(tracer, keep=False)
    provider.shutdown()

    records = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert {r["trace_id"] for r in records} == {kept}
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"POST /predict", "model.infer"}
    root, child = by_name["POST /predict"], by_name["model.infer"]
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == root["span_id"]
    assert child["attributes"] == {"request_id": "r1"}
    assert child["end_ns"] >= child["start_ns"] > 0
    assert dropped not in spans_file.read_text()


def test_a_span_ending_after_its_root_follows_the_decision(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    tracer, provider = _tracer(spans_file)
    for keep in (True, False):
        root = tracer.start_span("POST /predict")
        late = tracer.start_span("background", context=trace.set_span_in_context(root))
        root.set_attribute(KEPT_ATTRIBUTE, keep)
        root.end()
        late.end()
    provider.shutdown()
    names = [json.loads(line)["name"] for line in spans_file.read_text().splitlines()]
    assert names == ["POST /predict", "background"]
