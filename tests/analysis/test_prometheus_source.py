"""PrometheusSource on a real Prometheus: backfilled messy series, past windows, failures."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from rollout.analysis.observation import MetricsSourceError, Target
from rollout.analysis.prometheus import PrometheusSource
from rollout.analysis.queries import string_literal, versions_matcher
from rollout.demo.prom import start_prometheus
from rollout.spec import CustomMetric, PrometheusConfig, SpecError
from tests.support.backfill import BackfilledPrometheus
from tests.support.httpserve import serve, serve_text
from tests.support.scenarios import BASELINE, CANDIDATE, INJECTION

COUNTS = Target(model="counts", baseline=BASELINE, candidate=CANDIDATE)
TOKEN = "s3cr3t-token-value"
HEADER_SECRET = "header-secret-value"


def source_for(url: str, **kwargs: object) -> PrometheusSource:
    return PrometheusSource(PrometheusConfig(url=url, timeout=5), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def source(synthetic_prometheus: BackfilledPrometheus) -> Iterator[PrometheusSource]:
    src = source_for(synthetic_prometheus.url)
    yield src
    src.close()


def test_counts_sum_pods_routes_and_a_counter_reset_exactly(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    truth, end = synthetic_prometheus.dataset.truth, synthetic_prometheus.dataset.end
    # The whole span (both resets inside it) and one 60 s look.
    for start in (end - 15 * 60, end - 60):
        observation = source.observe(COUNTS, start, end)
        assert observation.problems == ()
        assert observation.baseline == truth.counts("counts", BASELINE, start, end)
        assert observation.candidate == truth.counts("counts", CANDIDATE, start, end)
    assert observation.candidate.errors and observation.baseline.errors
    assert [q.signal for q in observation.queries] == ["requests", "errors", "latency"]
    assert all(q.evaluated_at == end and q.series > 0 for q in observation.queries)


def test_a_past_window_reads_what_it_held_then(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    """Evaluated at the window's end: later data (there is 5 more minutes of it) is not read."""
    truth, end = synthetic_prometheus.dataset.truth, synthetic_prometheus.dataset.end - 300
    observation = source.observe(COUNTS, end - 120, end)
    assert observation.baseline == truth.counts("counts", BASELINE, end - 120, end)
    assert (
        observation.candidate.requests == truth.counts("counts", CANDIDATE, end - 120, end).requests
    )
    assert (
        observation.candidate.requests
        != truth.counts("counts", CANDIDATE, end + 180, end + 300).requests
    )


def test_unaligned_windows_give_whole_counts_and_monotone_buckets(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    end = synthetic_prometheus.dataset.end - 7.0  # between samples: increase() extrapolates
    observation = source.observe(COUNTS, end - 100.0, end)
    exact = synthetic_prometheus.dataset.truth.counts("counts", BASELINE, end - 100.0, end)
    counts = observation.baseline
    assert isinstance(counts.requests, int) and exact.requests is not None
    assert abs(counts.requests - exact.requests) < 0.2 * exact.requests
    assert counts.buckets is not None and counts.buckets[-1].le == math.inf
    assert all(b.count <= c.count for b, c in zip(counts.buckets, counts.buckets[1:], strict=False))
    assert all(isinstance(b.count, int) for b in counts.buckets)


def test_missing_candidate_series_are_none_and_named(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    end = synthetic_prometheus.dataset.end
    observation = source.observe(Target("gate-nocandidate", BASELINE, CANDIDATE), end - 300, end)
    assert observation.baseline.requests and observation.baseline.buckets
    assert observation.candidate.requests is None
    assert observation.candidate.errors is None
    assert observation.candidate.buckets is None
    problems = "\n".join(observation.problems)
    assert "requests: no series for the candidate (version '2.4.0')" in problems
    assert "latency: no histogram series for the candidate" in problems
    assert [q.series for q in observation.queries] == [1, 1, 13]


def test_a_version_without_error_series_had_zero_errors(tmp_path: Path) -> None:
    """The error series appears with the first error: its absence is 0 errors, not no data."""
    lines = [
        "# TYPE inference_requests counter",
        *(
            f'inference_requests_total{{model_name="m",model_version="{v}",status="ok"}} {n}'
            for v, n in (("a", 10), ("b", 10))
        ),
        'inference_requests_total{model_name="m",model_version="a",status="error"} 1',
        "# EOF",
    ]
    target = serve_text("\n".join(lines) + "\n")
    prometheus = start_prometheus(tmp_path, {"model": [target.address]}, exemplars=False)
    src = source_for(prometheus.url)
    try:
        deadline = time.monotonic() + 30
        while True:
            observation = src.observe(Target("m", "a", "b"), time.time() - 5, time.time())
            if observation.baseline.requests is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert observation.baseline.errors == 0 and observation.candidate.errors == 0
        assert observation.candidate.requests == 0
    finally:
        src.close()
        prometheus.stop()
        target.stop()


def test_injection_strings_match_literally(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    truth, end = synthetic_prometheus.dataset.truth, synthetic_prometheus.dataset.end
    odd = source.observe(Target("inject", BASELINE, INJECTION), end - 300, end)
    assert odd.candidate == truth.counts("inject", INJECTION, end - 300, end)
    # Against a model that has no such version, the string finds nothing, not vector(1).
    injected = source.observe(Target("counts", BASELINE, INJECTION), end - 300, end)
    assert injected.candidate.requests is None
    assert injected.baseline == truth.counts("counts", BASELINE, end - 300, end)


def _replacement(value: str) -> str:
    """`value` as label_replace's replacement, where `$0`, `$1`... expand and `$$` is a `$`."""
    return string_literal(value.replace("$", "$$"))


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
@example(value="$0", other="")
@example(value='2.4.0"} or vector(1) #', other="2.4.0")
def test_any_string_round_trips_through_prometheus(
    synthetic_prometheus: BackfilledPrometheus, value: str, other: str
) -> None:
    """Prometheus itself decodes the literal and runs the regex: the value comes back intact."""
    pattern = versions_matcher("v", (value, "x"))[len("v=~") :]
    promql = (
        f'label_replace(label_replace(vector(1), "v", {_replacement(value)}, "", ""),'
        f' "hit", "yes", "v", {pattern})'
    )
    answer = httpx.get(f"{synthetic_prometheus.url}/api/v1/query", params={"query": promql})
    (series,) = answer.json()["data"]["result"]
    assert series["metric"].get("v", "") == value
    assert series["metric"].get("hit") == "yes"
    miss = promql.replace(_replacement(value), _replacement(other), 1)
    answer = httpx.get(f"{synthetic_prometheus.url}/api/v1/query", params={"query": miss})
    (series,) = answer.json()["data"]["result"]
    assert (series["metric"].get("hit") == "yes") == (other in (value, "x"))


def test_custom_metrics_one_value_per_version_nan_is_no_data(
    synthetic_prometheus: BackfilledPrometheus,
) -> None:
    truth, end = synthetic_prometheus.dataset.truth, synthetic_prometheus.dataset.end
    custom = (
        CustomMetric(
            name="served",
            query="sum(increase(inference_requests_total{version_selector}[{window}]))",
            max_relative_change=0.5,
        ),
        CustomMetric(
            name="broken",
            query="sum(increase(inference_requests_total{version_selector}[{window}])) * NaN",
            max_value=1.0,
        ),
    )
    src = source_for(synthetic_prometheus.url, custom_metrics=custom)
    observation = src.observe(COUNTS, end - 300, end)
    served, broken = observation.custom
    assert served.baseline == truth.counts("counts", BASELINE, end - 300, end).requests
    assert served.candidate == truth.counts("counts", CANDIDATE, end - 300, end).requests
    assert broken.baseline is None and broken.candidate is None
    assert "custom:broken: nan for the candidate (version '2.4.0')" in observation.problems
    assert [q.signal for q in observation.queries][3:] == ["custom:served"] * 2 + [
        "custom:broken"
    ] * 2


def test_a_stopped_prometheus_raises_without_secrets(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    prometheus = start_prometheus(tmp_path / "prom", None, exemplars=False)
    config = PrometheusConfig(
        url=prometheus.url,
        bearer_token_file=token_file,
        headers={"X-Scope-OrgID": SecretStr(HEADER_SECRET)},
        timeout=2,
    )
    src = PrometheusSource(config, attempts=2, backoff=0.05)
    assert src.observe(COUNTS, 0, 60).candidate.requests is None  # up: no data, no error
    prometheus.stop()
    with pytest.raises(MetricsSourceError) as failure:
        src.observe(COUNTS, 0, 60)
    message = str(failure.value)
    assert "unreachable" in message and prometheus.url in message and "after 2 tries" in message
    for text in (message, repr(src), repr(config)):
        assert TOKEN not in text and HEADER_SECRET not in text
    # Back on the same port and data dir, the same source works again.
    prometheus.start()
    try:
        assert src.observe(COUNTS, 0, 60).problems
    finally:
        prometheus.stop()
        src.close()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, "<html>not json</html>", "answered garbage: the answer is not JSON"),
        (200, '{"status": "error", "data": {"result": []}}', "status is 'error'"),
        (200, '{"status": "success", "data": {"result": 7}}', "not an instant vector"),
        (503, "overloaded", "answered HTTP 503 (after 2 tries)"),
        (400, '{"status":"error","error":"parse error at char 5"}', "HTTP 400: parse error"),
    ],
)
def test_garbage_and_http_errors_are_source_errors(status: int, body: str, expected: str) -> None:
    server = serve_text(body, content_type="application/json", status=status)
    src = PrometheusSource(PrometheusConfig(url=server.url, timeout=2), attempts=2, backoff=0.01)
    try:
        with pytest.raises(
            MetricsSourceError, match=r"Prometheus at http://127\.0\.0\.1"
        ) as failure:
            src.observe(COUNTS, 0, 60)
        assert expected in str(failure.value)
    finally:
        src.close()
        server.stop()


def test_an_error_body_echoing_credentials_is_redacted(tmp_path: Path) -> None:
    def echo(headers: dict[str, str]) -> tuple[int, str, str]:
        return 400, "application/json", json.dumps({"status": "error", "error": str(headers)})

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    server = serve(echo)
    config = PrometheusConfig(
        url=server.url,
        bearer_token_file=token_file,
        headers={"X-Api-Key": SecretStr(HEADER_SECRET)},
    )
    src = PrometheusSource(config, attempts=1)
    try:
        with pytest.raises(MetricsSourceError) as failure:
            src.observe(COUNTS, 0, 60)
        assert "HTTP 400" in str(failure.value) and "***" in str(failure.value)
        assert TOKEN not in str(failure.value) and HEADER_SECRET not in str(failure.value)
    finally:
        src.close()
        server.stop()


def test_an_unreadable_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = PrometheusConfig(url="http://127.0.0.1:9", bearer_token_file=tmp_path / "missing")
    with pytest.raises(SpecError, match=r"prometheus\.bearerTokenFile"):
        PrometheusSource(config)


_BUCKET = 'inference_latency_seconds_bucket{model_name="m",model_version="2",le='
EXPOSITION = "\n".join(
    [
        "# TYPE inference_requests counter",
        'inference_requests_total{model_name="m",model_version="2",status="ok"} 10',
        'inference_requests_total{model_name="m",model_version="2",status="error"} 2'
        ' # {trace_id="e1"} 1.0',
        "# TYPE inference_latency_seconds histogram",
        _BUCKET + '"0.1"} 5 # {trace_id="fast"} 0.05',
        _BUCKET + '"1.0"} 11 # {trace_id="e1"} 0.7',
        _BUCKET + '"+Inf"} 12 # {trace_id="slow"} 2.5',
        'inference_latency_seconds_count{model_name="m",model_version="2"} 12',
        'inference_latency_seconds_sum{model_name="m",model_version="2"} 5.0',
        "# EOF",
        "",
    ]
)


def test_exemplars_name_trace_ids_filtered_by_latency_and_errors(tmp_path: Path) -> None:
    target = serve_text(EXPOSITION)
    prometheus = start_prometheus(tmp_path, {"model": [target.address]}, exemplars=True)
    src = source_for(prometheus.url)
    version_target = Target("m", "1", "2")
    try:
        deadline = time.monotonic() + 30
        while not src.exemplars(version_target, "2", time.time() - 60, time.time()):
            assert time.monotonic() < deadline, "no exemplars scraped"
            time.sleep(0.5)
        now = time.time()
        found = src.exemplars(version_target, "2", now - 60, now)
        assert {e.trace_id for e in found} == {"fast", "e1", "slow"}
        slow = src.exemplars(version_target, "2", now - 60, now, min_latency=0.5)
        assert {(e.trace_id, e.value) for e in slow} == {("e1", 0.7), ("slow", 2.5)}
        failed = src.exemplars(version_target, "2", now - 60, now, errors_only=True)
        assert {(e.trace_id, e.value) for e in failed} == {("e1", 0.7)}
        assert all(e.version == "2" for e in found + failed)
        assert src.exemplars(version_target, "1", now - 60, now) == ()
    finally:
        src.close()
        prometheus.stop()
        target.stop()
