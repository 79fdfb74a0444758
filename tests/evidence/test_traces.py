"""Reading kept spans back from JSON-lines files, as the evidence step does."""

from __future__ import annotations

import json
from pathlib import Path

from rollout.evidence.report import SpanTiming
from rollout.evidence.traces import find_trace, find_traces, infer_duration, span_duration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "00f067aa0ba902b700f067aa0ba902b7"


def _span(trace_id: str, name: str, start_ms: int, end_ms: int, parent: str | None) -> str:
    return json.dumps(
        {
            "trace_id": trace_id,
            "span_id": f"{start_ms:016x}",
            "parent_span_id": parent,
            "name": name,
            "start_ns": start_ms * 1_000_000,
            "end_ns": end_ms * 1_000_000,
            "attributes": {"model_version": "2.4.0"},
            "status": "UNSET",
        }
    )


def _write(path: Path, *lines: str, tail: str = "") -> Path:
    path.write_text("".join(line + "\n" for line in lines) + tail)
    return path


def test_a_trace_comes_back_ordered_by_start_with_durations(tmp_path: Path) -> None:
    spans = _write(
        tmp_path / "v2.jsonl",
        _span(TRACE, "model.infer", 120, 150, "a"),
        _span(OTHER, "model.infer", 0, 5, "b"),
        _span(TRACE, "feature_store.get_features", 100, 120, "a"),
        _span(TRACE, "POST /predict", 100, 160, None),
    )
    found = find_trace(spans, TRACE.upper())
    assert [s.name for s in found] == ["POST /predict", "feature_store.get_features", "model.infer"]
    assert found[2].duration_seconds == 0.03
    assert infer_duration([spans], TRACE) == 0.03


def test_a_partial_last_line_and_garbage_are_skipped(tmp_path: Path) -> None:
    partial = _span(TRACE, "postprocess.serialize", 150, 155, "a")[:40]
    spans = _write(
        tmp_path / "v2.jsonl",
        "not json",
        json.dumps({"trace_id": TRACE}),  # no name or times: not a span
        _span(TRACE, "model.infer", 120, 150, "a"),
        tail=partial,
    )
    assert find_trace(spans, TRACE) == (SpanTiming("model.infer", 0.03),)


def test_several_files_and_a_missing_one(tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1.jsonl", _span(OTHER, "model.infer", 0, 10, None))
    v2 = _write(tmp_path / "v2.jsonl", _span(TRACE, "model.infer", 0, 20, None))
    found = find_traces([tmp_path / "gone.jsonl", v1, v2], [TRACE, OTHER, "ff" * 16])
    assert set(found) == {TRACE, OTHER}
    assert find_trace([tmp_path / "gone.jsonl"], TRACE) == ()


def test_the_infer_duration_is_none_when_the_span_is_missing() -> None:
    assert span_duration((SpanTiming("POST /predict", 0.1),)) is None
    assert span_duration((SpanTiming("model.infer", 0.02), SpanTiming("model.infer", 0.01))) == 0.03
