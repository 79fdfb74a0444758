"""The metrics contract, as the instrumented demo server shows it to a scraper and a reader."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from rollout.instrument.metrics import INFER_BUCKETS, LATENCY_BUCKETS, latency_buckets

if TYPE_CHECKING:
    from conftest import Served

OPENMETRICS_ACCEPT = (  # what Prometheus 2.42 sends with exemplar storage on
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
SLOW_MS = 80.0  # the fixture's --slow-threshold
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CHILD_SPANS = {"feature_store.get_features", "model.infer", "postprocess.serialize"}


def _parent(trace_id: str = CALLER_TRACE) -> str:
    return f"00-{trace_id}-00f067aa0ba902b7-01"


def _scrape(served: Served) -> tuple[str, list[Sample]]:
    response = httpx.get(f"{served.url}/metrics", headers={"accept": OPENMETRICS_ACCEPT})
    assert response.status_code == 200
    samples = [s for f in text_string_to_metric_families(response.text) for s in f.samples]
    return response.headers["content-type"], samples


def test_metrics_have_the_contract_names_labels_buckets_and_exemplars(served: Served) -> None:
    content_type, samples = _scrape(served)
    assert content_type.startswith("application/openmetrics-text")
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)

    version = {"model_name": "fraud", "model_version": "2.4.0"}
    totals = {s.labels["status"]: s for s in by_name["inference_requests_total"]}
    assert set(totals) == {"ok", "error"}
    assert all(s.labels == {**version, "status": k} for k, s in totals.items())
    buckets = by_name["inference_latency_seconds_bucket"]
    assert tuple(float(s.labels["le"]) for s in buckets) == (*LATENCY_BUCKETS, math.inf)
    assert all({k: v for k, v in s.labels.items() if k != "le"} == version for s in buckets)
    assert buckets[-1].value == sum(s.value for s in totals.values())
    assert [s.labels for s in by_name["feature_fetch_seconds_count"]] == [
        {"source": "online_store"}
    ]
    # Every answered request went through the model (a failure too): as many inferences as
    # feature fetches, each taking about the demo's simulated 24 ms.
    infer = by_name["model_infer_seconds_bucket"]
    assert tuple(float(s.labels["le"]) for s in infer) == (*INFER_BUCKETS, math.inf)
    (infer_count,) = by_name["model_infer_seconds_count"]
    assert infer_count.labels == version
    assert infer_count.value == by_name["feature_fetch_seconds_count"][0].value > 0
    assert infer[-1].value == infer_count.value
    (infer_sum,) = by_name["model_infer_seconds_sum"]
    assert 0.01 < infer_sum.value / infer_count.value < 0.2
    assert by_name["in_flight_requests"][0].value == 0
    exemplars = [s.exemplar for s in buckets if s.exemplar is not None]
    assert exemplars, "a kept trace should have left an exemplar on some bucket"
    assert all(set(e.labels) == {"trace_id"} and len(e.labels["trace_id"]) == 32 for e in exemplars)


def test_a_plain_scrape_gets_the_text_format_without_exemplars(served: Served) -> None:
    response = httpx.get(f"{served.url}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert "inference_latency_seconds_bucket" in response.text
    assert "trace_id" not in response.text


def test_every_exemplar_names_a_trace_whose_spans_were_exported(served: Served) -> None:
    _, samples = _scrape(served)
    exemplar_ids = {s.exemplar.labels["trace_id"] for s in samples if s.exemplar is not None}
    assert exemplar_ids
    spans = served.spans()
    for trace_id in exemplar_ids:
        names = {s["name"] for s in spans if s["trace_id"] == trace_id}
        # a failed request stops at model.infer: no serialization span
        assert {"POST /predict", "feature_store.get_features", "model.infer"} <= names, trace_id


def test_child_spans_carry_the_model_and_request_attributes(served: Served) -> None:
    response = served.predict(headers={"x-request-id": "req-attrs-1", "traceparent": _parent()})
    trace_id = response.headers["x-trace-id"]
    spans = served.trace_spans(trace_id, CHILD_SPANS)
    children = [s for s in spans if s["name"] in CHILD_SPANS]
    assert {s["name"] for s in children} == CHILD_SPANS
    for span in children:
        attributes = span["attributes"]
        assert attributes["model_name"] == "fraud"
        assert attributes["model_version"] == "2.4.0"
        assert attributes["request_id"] == "req-attrs-1"


def test_traceparent_continues_the_callers_trace(served: Served) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": _parent(caller_trace), "x-request-id": "req-parent-1"}
    response = served.predict(headers=headers)
    assert response.headers["x-trace-id"] == caller_trace
    spans = served.trace_spans(caller_trace, {"POST /predict"})
    roots = [s for s in spans if s["kind"] == "SERVER"]
    assert len(roots) == 1
    assert roots[0]["parent_span_id"] == "00f067aa0ba902b7"


def test_failed_and_slow_requests_are_always_kept(served: Served) -> None:
    logs = served.request_logs()
    kept = served.kept_trace_ids()
    failed = [r["trace_id"] for r in logs if r["status"] == "error"]
    slow = [r["trace_id"] for r in logs if r["latency_ms"] > SLOW_MS and r["status"] == "ok"]
    assert failed and slow  # the fixture's mix has both
    assert set(failed) <= kept
    assert set(slow) <= kept


def test_the_head_rate_is_roughly_honoured_for_the_rest(served: Served) -> None:
    kept = served.kept_trace_ids()
    ordinary = [
        r["trace_id"]
        for r in served.request_logs()
        if r["status"] == "ok"
        and r["latency_ms"] <= SLOW_MS
        and not r["request_id"].startswith("req-")
    ]
    assert len(ordinary) >= 100
    fraction = sum(t in kept for t in ordinary) / len(ordinary)
    assert 0.02 <= fraction <= 0.25  # 10% expected; loose for ~150 draws


def test_one_json_log_line_per_request_with_the_contract_fields(served: Served) -> None:
    secret_user = "alice@example.com"
    served.predict(headers={"x-request-id": "req-log-1"}, user_id=secret_user)
    served.predict(headers={"x-request-id": "bad id with spaces"})
    logs = served.request_logs()
    fields = {"ts", "level", "service", "route", "model_name", "model_version"}
    fields |= {"request_id", "latency_ms", "status", "trace_id"}
    assert all(fields <= set(r) for r in logs)
    mine = [r for r in logs if r["request_id"] == "req-log-1"]
    assert len(mine) == 1
    assert mine[0]["service"] == "fraud-2.4.0" and mine[0]["route"] == "/predict"
    assert mine[0]["status"] in {"ok", "error"}
    assert secret_user not in served.process.log_path.read_text()
    assert not any(r["request_id"] == "bad id with spaces" for r in logs)
    assert len({r["request_id"] for r in logs}) == len(logs)


def test_counts_agree_between_metrics_logs_and_the_load(served: Served) -> None:
    _, samples = _scrape(served)
    totals = {s.labels["status"]: s.value for s in samples if s.name == "inference_requests_total"}
    logs = served.request_logs()
    assert totals["ok"] == sum(r["status"] == "ok" for r in logs)
    assert totals["error"] == sum(r["status"] == "error" for r in logs)
    load = served.load
    assert load.by_status.get("500", 0) <= totals["error"]
    assert load.sent <= totals["ok"] + totals["error"]


def test_the_error_rate_knob_fails_about_that_fraction(served: Served) -> None:
    load = served.load
    assert load.sent >= 150
    assert set(load.by_status) <= {"200", "500"}
    assert 0.03 <= load.by_status.get("500", 0) / load.sent <= 0.2  # --error-rate 0.1


def test_the_kits_buckets_resolve_a_twenty_percent_regression_around_the_slo() -> None:
    """1.2 x a ladder bound is the ladder bound 8 steps up (to the 5 digits printed), from 0.4x
    to 1.3x the SLO: the judge's matched bound for +20% needs no rounding up."""
    for slo in (0.15, 0.5):
        bounds = latency_buckets(slo)
        ladder = [b for b in bounds if 0.39 * slo <= b <= 1.32 * slo]
        assert len(ladder) == 53
        steps = [b / a for a, b in itertools.pairwise(ladder)]
        assert max(steps) < 1.024
        for i in range(len(ladder) - 8):
            assert ladder[i + 8] == pytest.approx(1.2 * ladder[i], rel=1e-4)
    assert latency_buckets() == LATENCY_BUCKETS and len(LATENCY_BUCKETS) == 63


def test_a_denser_ladder_has_steps_bounds_per_twenty_percent_over_the_same_span() -> None:
    """benchmarks/bucket_density.py's layouts: the kit's shape with `steps` bounds per +20%."""
    assert latency_buckets(steps=8) == LATENCY_BUCKETS
    dense = latency_buckets(0.15, steps=16)
    ladder = [b for b in dense if 0.39 * 0.15 <= b <= 1.32 * 0.15]
    assert len(ladder) == 5 * 16 + 24 + 1
    assert min(ladder) == pytest.approx(0.15 / 1.2**5, rel=1e-4)
    for i in range(len(ladder) - 16):
        assert ladder[i + 16] == pytest.approx(1.2 * ladder[i], rel=1e-4)
