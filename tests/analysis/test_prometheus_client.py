"""The Prometheus HTTP client without a server (httpx.MockTransport): every failure mapped
to a `MetricsSourceError` that names it, retries of the transient ones, secrets never
shown, and batched reads split per target."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from rollout.analysis.observation import MetricsSourceError, Target
from rollout.analysis.prom_http import MAX_GET_QUERY, PrometheusClient
from rollout.analysis.prometheus import PrometheusSource, SourceRegistry
from rollout.spec import CustomMetric, MetricNames, PrometheusConfig

URL = "http://prom.example:9090"
TOKEN = "tok-never-print-me"
HEADER_SECRET = "hdr-never-print-me"
PASSWORD = "pw-never-print-me"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records each request and answers with `answer`."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def queries(self) -> list[str]:
        found = []
        for request in self.requests:
            params = parse_qs(request.content.decode()) if request.method == "POST" else {}
            found.append(params.get("query", [request.url.params.get("query", "")])[0])
        return found


def client(handler: Handler, config: PrometheusConfig | None = None) -> PrometheusClient:
    return PrometheusClient(
        config or PrometheusConfig(url=URL, timeout=2),
        attempts=3,
        backoff=0.001,
        transport=httpx.MockTransport(handler),
    )


def answer(status: int, body: object) -> Handler:
    text = body if isinstance(body, str) else json.dumps(body)
    return lambda request: httpx.Response(status, text=text)


def matrix(*series: tuple[dict[str, str], list[tuple[float, float]]]) -> dict[str, Any]:
    result = [
        {"metric": labels, "values": [[t, str(v)] for t, v in samples]}
        for labels, samples in series
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def raises(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "expected", "tries"),
    [
        (raises(httpx.ConnectError("refused")), "is unreachable (connection failed) (after 3", 3),
        (raises(httpx.ReadTimeout("slow")), "timed out after 2s (after 3 tries)", 3),
        (answer(503, "overloaded"), "answered HTTP 503 (after 3 tries) [requests query]", 3),
        (answer(429, {"status": "error", "error": "too many"}), "HTTP 429 (after 3 tries)", 3),
        (
            answer(500, {"status": "error", "errorType": "internal", "error": "disk on fire"}),
            "answered HTTP 500 (after 3 tries): disk on fire",
            3,
        ),
        (
            answer(400, {"status": "error", "errorType": "bad_data", "error": "parse error at 5"}),
            "answered HTTP 400: parse error at 5 [requests query]",
            1,
        ),
        (answer(200, "<html>not json</html>"), "answered garbage: the answer is not JSON", 1),
        (
            answer(200, {"status": "error", "data": {}}),
            "the answer's status is 'error', not 'success'",
            1,
        ),
        (
            answer(200, {"status": "success", "data": {"resultType": "vector", "result": []}}),
            "requests query with a result that is not a range vector (matrix)",
            1,
        ),
        (
            answer(200, {"status": "success", "data": {"result": 7}}),
            "not a range vector (matrix)",
            1,
        ),
        (
            answer(200, {"status": "success", "data": [1, 2]}),
            "not a range vector (matrix)",
            1,
        ),
    ],
)
def test_every_failure_is_a_source_error_transient_ones_retried(
    handler: Handler, expected: str, tries: int
) -> None:
    recorder = Recorder(handler)
    prometheus = client(recorder)
    with pytest.raises(MetricsSourceError) as failure:
        prometheus.matrix("requests", "up[1m]", 100.0)
    assert str(failure.value).startswith(f"Prometheus at {URL} ")
    assert expected in str(failure.value)
    assert len(recorder.requests) == tries


def test_a_transient_failure_then_an_answer_is_the_answer() -> None:
    answers = [answer(502, "bad gateway"), answer(200, matrix(({"a": "1"}, [(1.0, 2.0)])))]
    recorder = Recorder(lambda request: answers.pop(0)(request))
    assert client(recorder).matrix("requests", "x[1m]", 5.0) == [({"a": "1"}, [(1.0, 2.0)])]
    assert len(recorder.requests) == 2


def test_the_query_is_evaluated_at_the_time_and_long_ones_are_posted() -> None:
    recorder = Recorder(answer(200, matrix()))
    prometheus = client(recorder)
    prometheus.matrix("requests", "x[1m]", 1234.5)
    (sent,) = recorder.requests
    assert (sent.method, sent.url.path) == ("GET", "/api/v1/query")
    assert sent.url.params["time"] == "1234.500" and sent.url.params["query"] == "x[1m]"
    long_query = 'x{a=~"' + "b" * MAX_GET_QUERY + '"}[1m]'
    prometheus.matrix("requests", long_query, 1.0)
    assert recorder.requests[1].method == "POST"
    assert recorder.queries()[1] == long_query


def test_each_answer_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[object] = []
    original = json.loads

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(httpx._models.jsonlib, "loads", counting)
    client(answer(200, matrix(({"a": "1"}, [(1.0, 2.0)])))).matrix("requests", "x", 1.0)
    assert len(decoded) == 1


def test_scalars_and_vectors_for_custom_metrics() -> None:
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "2.5"]}}
    assert client(answer(200, scalar)).vector("custom:x", "1", 1.0) == [({}, 2.5)]
    vector = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [1, "NaN"]}]},
    }
    ((labels, value),) = client(answer(200, vector)).vector("custom:x", "y", 1.0)
    assert labels == {"a": "b"} and value != value
    with pytest.raises(MetricsSourceError, match="custom:x query with a result that is not an"):
        client(answer(200, matrix())).vector("custom:x", "y[1m]", 1.0)


def configs(tmp_path: Path) -> dict[str, PrometheusConfig]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "password").write_text(PASSWORD)
    return {
        "bearer": PrometheusConfig(
            url=URL,
            bearer_token_file=tmp_path / "token",
            headers={"X-Scope-OrgID": SecretStr(HEADER_SECRET)},
        ),
        "basic": PrometheusConfig.model_validate(
            {
                "url": URL,
                "basicAuth": {"username": "me", "passwordFile": str(tmp_path / "password")},
            }
        ),
        "url-password": PrometheusConfig(url=f"http://me:{PASSWORD}@prom.example:9090"),
    }


@pytest.mark.parametrize("auth", ["bearer", "basic", "url-password"])
def test_credentials_are_sent_and_never_shown(tmp_path: Path, auth: str) -> None:
    """A server quoting the request's headers in its error: the message says *** instead."""

    def echo(request: httpx.Request) -> httpx.Response:
        quoted = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return httpx.Response(500, json={"status": "error", "error": f"{quoted} {request.url}"})

    recorder = Recorder(echo)
    prometheus = client(recorder, configs(tmp_path)[auth])
    with pytest.raises(MetricsSourceError) as failure:
        prometheus.matrix("requests", "x", 1.0)
    with pytest.raises(MetricsSourceError) as exemplars:
        prometheus.exemplars("x", 0.0, 1.0)
    basic = base64.b64encode(f"me:{PASSWORD}".encode()).decode()
    for text in (str(failure.value), str(exemplars.value), repr(prometheus)):
        assert "***" in text or text == repr(prometheus)
        for secret in (TOKEN, HEADER_SECRET, PASSWORD, basic):
            assert secret not in text
    sent = recorder.requests[0]
    assert sent.url.host == "prom.example" and PASSWORD not in str(sent.url)
    if auth == "bearer":
        assert sent.headers["authorization"] == f"Bearer {TOKEN}"
        assert sent.headers["x-scope-orgid"] == HEADER_SECRET
    else:
        assert sent.headers["authorization"] == f"Basic {basic}"


# ---------------------------------------------------------------------------- batched reads

M = MetricNames()


def counter(model: str, version: str, status: str, values: list[float]) -> Any:
    labels = {"__name__": "inference_requests_total", "model_name": model}
    labels |= {"model_version": version, "status": status, "pod": "p"}
    return (labels, [(float(10 * i), v) for i, v in enumerate(values)])


def bucket(model: str, version: str, le: str, values: list[float]) -> Any:
    labels = {"__name__": "inference_latency_seconds_bucket", "model_name": model}
    labels |= {"model_version": version, "le": le}
    return (labels, [(float(10 * i), v) for i, v in enumerate(values)])


def batch_server() -> Recorder:
    """Two models; the answer also holds (m1, "3") which only m2's versions name."""
    samples = matrix(
        counter("m1", "1", "ok", [0, 5, 9]),
        counter("m1", "1", "error", [0, 1, 1]),
        counter("m1", "2", "ok", [0, 2, 4]),
        counter("m1", "3", "ok", [0, 100, 200]),  # not a version of m1's rollout
        counter("m2", "3", "ok", [10, 13, 20]),
        counter("m2", "4", "error", [0, 0, 3]),
        *(bucket("m1", v, le, [0, 6, 10]) for v in ("1", "2") for le in ("0.1", "+Inf")),
        *(bucket("m2", v, le, [0, 1, 2]) for v in ("3", "4") for le in ("0.1", "+Inf")),
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["query"].startswith("{__name__=~"):
            return httpx.Response(200, json=samples)
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
        )

    return Recorder(handler)


def test_many_targets_one_query_split_per_signal_model_and_version() -> None:
    recorder = batch_server()
    source = PrometheusSource(PrometheusConfig(url=URL), transport=httpx.MockTransport(recorder))
    one, two = Target("m1", "1", "2"), Target("m2", "3", "4")
    seen = source.observe_many([one, two], 5.0, 20.0)
    assert recorder.queries() == [
        '{__name__=~"^(?:inference_requests_total|inference_latency_seconds_bucket)$",'
        'model_name=~"^(?:m1|m2)$",model_version=~"^(?:1|2|3|4)$"}[315s]'
    ]
    assert (seen[one].baseline.requests, seen[one].baseline.errors) == (10, 1)
    assert (seen[one].candidate.requests, seen[one].candidate.errors) == (4, 0)
    assert (seen[two].baseline.requests, seen[two].baseline.errors) == (10, 0)
    assert (seen[two].candidate.requests, seen[two].candidate.errors) == (3, 3)
    assert seen[one].baseline.buckets is not None
    assert [b.count for b in seen[one].baseline.buckets] == [10, 10]
    # Each target's record: the query that selects its own series alone, and their number.
    record = seen[one].queries[0]
    assert record.promql == (
        'inference_requests_total{model_name="m1",model_version=~"^(?:1|2)$"}[315s]'
    )
    assert record.series == 3 and "batched with 1 other" in record.note
    assert seen[two].queries[1].series == 4
    source.close()


def test_per_target_starts_and_custom_metrics_per_version() -> None:
    recorder = batch_server()
    custom = (CustomMetric(name="c", query="sum(x{version_selector})", max_value=2.0),)
    source = PrometheusSource(
        PrometheusConfig(url=URL), M, custom, transport=httpx.MockTransport(recorder)
    )
    one, two = Target("m1", "1", "2"), Target("m2", "3", "4")
    seen = source.observe_many([one, two], {one: 5.0, two: 15.0}, 20.0)
    assert seen[two].start == 15.0 and seen[two].baseline.requests == 7
    assert seen[one].baseline.requests == 10
    assert recorder.queries()[0].endswith("[315s]")  # the longest look's reach
    assert len(recorder.requests) == 1 + 2 * 2  # custom: one query per version per target
    assert seen[two].custom[0].candidate == 1.0
    with pytest.raises(ValueError, match="must end after it starts"):
        source.observe_many([one], 20.0, 20.0)
    assert source.observe_many([], 0.0, 1.0) == {}


def test_one_target_sends_one_query_and_records_each_signal_on_its_own() -> None:
    recorder = batch_server()
    source = PrometheusSource(PrometheusConfig(url=URL), transport=httpx.MockTransport(recorder))
    observation = source.observe(Target("m1", "1", "2"), 5.0, 20.0)
    selector = 'model_name="m1",model_version=~"^(?:1|2)$"'
    names = '__name__=~"^(?:inference_requests_total|inference_latency_seconds_bucket)$"'
    assert recorder.queries() == [f"{{{names},{selector}}}[315s]"]
    # The report names each signal's query, which a reader can rerun on its own.
    assert [q.promql for q in observation.queries] == [
        f"inference_requests_total{{{selector}}}[315s]",
        f"inference_latency_seconds_bucket{{{selector}}}[315s]",
    ]
    assert observation.queries[0].note == "" and observation.queries[0].series == 3


def test_a_failing_batch_fails_every_target() -> None:
    source = PrometheusSource(
        PrometheusConfig(url=URL, timeout=1),
        attempts=2,
        backoff=0.001,
        transport=httpx.MockTransport(answer(500, "down")),
    )
    with pytest.raises(
        MetricsSourceError, match=r"HTTP 500 \(after 2 tries\) \[requests and latency query\]"
    ):
        source.observe_many([Target("m1", "1", "2"), Target("m2", "3", "4")], 0.0, 60.0)


def test_the_registry_shares_one_client_per_prometheus_and_credentials(tmp_path: Path) -> None:
    recorder = batch_server()
    registry = SourceRegistry(transport=httpx.MockTransport(recorder))
    plain = PrometheusConfig(url=URL)
    first = registry.source(plain)
    assert registry.source(PrometheusConfig(url=URL + "/")) is first
    renamed = registry.source(plain, MetricNames(model_label="app"))
    assert renamed is not first and registry.clients() == 1
    with_token = registry.source(configs(tmp_path)["bearer"])
    assert with_token is not first and registry.clients() == 2
    first.close()  # shared: its owner, the registry, closes the connections
    first.observe(Target("m1", "1", "2"), 5.0, 20.0)
    registry.close()
    assert registry.clients() == 0
    with pytest.raises(MetricsSourceError, match="unreadable"):  # closed: an error, not data
        first.observe(Target("m1", "1", "2"), 5.0, 20.0)
