"""PrometheusSource on a real Prometheus: backfilled messy series, past windows, failures."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from tests.support import scenarios
from tests.support.backfill import BackfilledPrometheus, backfilled_prometheus, past_end
from tests.support.httpserve import serve, serve_text
from tests.support.scenarios import BASELINE, CANDIDATE, INJECTION
from tests.support.synthetic import (
    KIT_BUCKETS,
    Dataset,
    SyntheticModel,
    synthesize,
)

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
    assert [q.signal for q in observation.queries] == ["requests", "latency"]
    assert all(q.evaluated_at == end and q.series > 0 for q in observation.queries)
    assert all("increase(" not in q.promql for q in observation.queries)


def test_many_targets_in_one_batch_count_as_each_alone(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    """Two queries for every model on the Prometheus, each target's own start: the same
    counts, problems and series as one target at a time, on the real server."""
    truth, end = synthetic_prometheus.dataset.truth, synthetic_prometheus.dataset.end
    targets = {
        COUNTS: end - 300,
        Target("inject", BASELINE, INJECTION): end - 120,
        Target("gate-nocandidate", BASELINE, CANDIDATE): end - 600,
        Target("gate-errors", BASELINE, CANDIDATE): end - 60.5,
        Target("absent", BASELINE, CANDIDATE): end - 60,
    }
    batched = source.observe_many(targets, targets, end)
    assert list(batched) == list(targets)
    for target, start in targets.items():
        alone = source.observe(target, start, end)
        seen = batched[target]
        assert (seen.start, seen.end) == (start, end)
        assert (seen.baseline, seen.candidate) == (alone.baseline, alone.candidate)
        assert seen.problems == alone.problems
        assert [(q.promql, q.series) for q in seen.queries] == [
            (q.promql, q.series) for q in alone.queries
        ]
        assert all("batched with 4 other targets" in q.note for q in seen.queries)
    assert batched[COUNTS].baseline == truth.counts("counts", BASELINE, end - 300, end)
    assert batched[Target("absent", BASELINE, CANDIDATE)].baseline.requests is None


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


def test_unaligned_windows_give_the_exact_counts(
    source: PrometheusSource, synthetic_prometheus: BackfilledPrometheus
) -> None:
    """Between samples, where increase() extrapolated: the same integers as the truth."""
    truth, end = synthetic_prometheus.dataset.truth, synthetic_prometheus.dataset.end - 7.0
    for start in (end - 100.0, end - 52.5, end - 3.0):
        observation = source.observe(COUNTS, start, end)
        assert observation.baseline == truth.counts("counts", BASELINE, start, end)
        assert observation.candidate == truth.counts("counts", CANDIDATE, start, end)
    counts = observation.baseline  # (end - 3, end] holds no scrape: zero, not "no data"
    assert counts.requests == 0 and counts.errors == 0
    assert counts.buckets is not None and {b.count for b in counts.buckets} == {0}
    assert observation.problems == ()


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
    # Raw series: 3 pods x 2 statuses, and 3 pods x the kit's buckets and +Inf, all the
    # baseline's.
    assert [q.series for q in observation.queries] == [6, 3 * (len(KIT_BUCKETS) + 1)]


def test_a_version_without_error_series_had_zero_errors(tmp_path: Path) -> None:
    """The error series appears with the first error: its absence is 0 errors, not no data.
    Scraped live: series that appear inside a look count from 0, later looks count 0."""
    lines = [
        "# TYPE inference_requests counter",
        *(
            f'inference_requests_total{{model_name="m",model_version="{v}",status="ok"}} {n}'
            for v, n in (("a", 10), ("b", 7))
        ),
        'inference_requests_total{model_name="m",model_version="a",status="error"} 1',
        "# EOF",
    ]
    target = serve_text("\n".join(lines) + "\n")
    born = time.time() - 1
    prometheus = start_prometheus(tmp_path, {"model": [target.address]}, exemplars=False)
    src = source_for(prometheus.url)
    versions = Target("m", "a", "b")
    try:
        deadline = time.monotonic() + 30
        while src.observe(versions, born, time.time()).candidate.requests is None:
            assert time.monotonic() < deadline, "never scraped"
            time.sleep(0.5)
        seen = time.time()
        first = src.observe(versions, born, seen)
        assert (first.baseline.requests, first.baseline.errors) == (11, 1)
        assert (first.candidate.requests, first.candidate.errors) == (7, 0)
        assert not [p for p in first.problems if p.startswith("requests")]
        time.sleep(2.5)  # a few more scrapes (every 1 s) of the same values
        later = src.observe(versions, seen, time.time())
        assert (later.baseline.requests, later.baseline.errors) == (0, 0)
        assert (later.candidate.requests, later.candidate.errors) == (0, 0)
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
    assert [q.signal for q in observation.queries][2:] == ["custom:served"] * 2 + [
        "custom:broken"
    ] * 2
    # A wider custom window widens what the custom queries see, never the counts.
    wide = src.observe(COUNTS, end - 60, end, custom_window=600)
    assert wide.baseline == truth.counts("counts", BASELINE, end - 60, end)
    assert wide.custom[0].baseline == truth.counts("counts", BASELINE, end - 600, end).requests
    assert wide.custom[0].candidate == truth.counts("counts", CANDIDATE, end - 600, end).requests
    assert "[600s]" in wide.queries[2].promql and "[360s]" in wide.queries[0].promql
    src.close()


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
        (200, '{"status": "success", "data": {"result": 7}}', "not a range vector (matrix)"),
        (
            200,
            '{"status": "success", "data": {"resultType": "vector",'
            ' "result": [{"metric": {}, "value": [1, "5"]}]}}',
            "requests and latency query with a result that is not a range vector (matrix)",
        ),
        (
            200,
            '{"status": "success", "data": {"resultType": "matrix",'
            ' "result": [{"metric": {}, "values": [[1, "5", "x"]]}]}}',
            "not a range vector (matrix)",
        ),
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


def test_nan_samples_are_no_data_naming_the_value_and_the_version() -> None:
    """A range answer whose baseline series holds a NaN: that version has no counts (and
    says why), the other version's exact counts stand."""

    def series(name: str, version: str, values: list[list[object]]) -> dict[str, object]:
        labels = {"__name__": name, "model_version": version, "status": "ok", "le": "+Inf"}
        return {"metric": labels, "values": values}

    names = ("inference_requests_total", "inference_latency_seconds_bucket")
    body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [
                    *(series(name, BASELINE, [[0, "4"], [30, "NaN"]]) for name in names),
                    *(series(name, CANDIDATE, [[0, "4"], [30, "9"], [60, "12"]]) for name in names),
                ],
            },
        }
    )
    server = serve_text(body, content_type="application/json")
    src = source_for(server.url)
    try:
        observation = src.observe(COUNTS, 0, 30)
    finally:
        src.close()
        server.stop()
    assert observation.baseline.requests is None and observation.baseline.buckets is None
    assert observation.candidate.requests == 5 and observation.candidate.errors == 0
    assert observation.candidate.buckets is not None
    assert [(b.le, b.count) for b in observation.candidate.buckets] == [(math.inf, 5)]
    assert "requests: nan for the baseline (version '2.3.1')" in observation.problems[0]
    assert "latency: nan for the baseline" in observation.problems[1]


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


# ---------------------------------------------------------------------------- exact counts
# A second backfill: the same messy pair at 15 s, 30 s and 60 s scrape intervals, with a
# counter reset (15 min in), a baseline pod that vanishes (10 min in) and a candidate pod
# that appears (20 min in), two routes, pod and instance labels.

SCRAPES = (15.0, 30.0, 60.0)
SCRAPE_MINUTES = 30.0


def scrape_model(step: float) -> SyntheticModel:
    return scenarios.scrape_model("scrape", step)


@pytest.fixture(scope="module")
def scrape_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BackfilledPrometheus]:
    dataset = synthesize(
        [scrape_model(step) for step in SCRAPES], end=past_end(), minutes=SCRAPE_MINUTES
    )
    backfilled = backfilled_prometheus(dataset, tmp_path_factory.mktemp("scrape-prometheus"))
    try:
        yield backfilled
    finally:
        backfilled.stop()


def minute_looks(dataset: Dataset, offset: float) -> list[tuple[float, float]]:
    """Consecutive 60 s looks over the data, shifted by `offset` seconds off the minute."""
    first = dataset.start + offset
    count = int((dataset.end - first) // 60)
    return [(first + 60 * k, first + 60 * k + 60) for k in range(count)]


@pytest.mark.parametrize("step", SCRAPES)
def test_minute_looks_count_exactly_at_every_scrape_interval(
    scrape_prometheus: BackfilledPrometheus, step: float
) -> None:
    """Every 60 s look, aligned with the scrapes or 7 s off, equals the truth as integers:
    through the reset, the vanishing and the appearing pod; consecutive looks add up to
    the whole window's count."""
    dataset, model = scrape_prometheus.dataset, scrape_model(step)
    truth = dataset.truth
    target = Target(model.model, BASELINE, CANDIDATE)
    src = source_for(scrape_prometheus.url)
    try:
        for offset in (0.0, 7.0):
            looks = minute_looks(dataset, offset)
            seen = [src.observe(target, start, end) for start, end in looks]
            for (start, end), observation in zip(looks, seen, strict=True):
                assert observation.problems == (), (start, end)
                for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
                    counts = getattr(observation, role)
                    assert counts == truth.counts(model.model, version, start, end), (role, start)
                    assert isinstance(counts.requests, int) and isinstance(counts.errors, int)
            whole = src.observe(target, looks[0][0], looks[-1][1])
            for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
                total = getattr(whole, role)
                assert total == truth.counts(model.model, version, looks[0][0], looks[-1][1])
                assert sum(getattr(o, role).requests for o in seen) == total.requests
                assert sum(getattr(o, role).errors for o in seen) == total.errors
                assert total.errors > 0
        # The looks did cross the events, and those looks had traffic to get wrong.
        base_events, cand_events = (
            truth.events(model.model, BASELINE),
            truth.events(model.model, CANDIDATE),
        )
        assert set(base_events) == {"reset", "vanish"} and set(cand_events) == {"reset", "appear"}
        for at in (*base_events.values(), *cand_events.values()):
            assert dataset.start + 60 < at < dataset.end - 60
    finally:
        src.close()


class RecordingTransport(httpx.HTTPTransport):
    """The network, noting each query's PromQL."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        if request.method == "POST":
            params.update(httpx.QueryParams(request.read().decode()))
        if "query" in params:
            self.queries.append(params["query"])
        return super().handle_request(request)


@pytest.mark.parametrize("step", SCRAPES)
def test_chained_looks_read_only_their_own_window_and_count_what_the_full_range_does(
    scrape_prometheus: BackfilledPrometheus, step: float
) -> None:
    """A look that starts where the target's last one ended reads its own minute (the samples
    before it were kept from the last answer), not the 5-minute staleness period; its counts
    are the truth, through the reset and the pods that vanish and appear. A look that does
    not chain reads the full range again."""
    dataset, model = scrape_prometheus.dataset, scrape_model(step)
    target = Target(model.model, BASELINE, CANDIDATE)
    transport = RecordingTransport()
    src = PrometheusSource(PrometheusConfig(url=scrape_prometheus.url), transport=transport)
    try:
        looks = minute_looks(dataset, 7.0)
        for start, end in looks:
            observation = src.observe(target, start, end)
            for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
                exact = dataset.truth.counts(model.model, version, start, end)
                assert getattr(observation, role) == exact, (role, start)
        live = [q for q in transport.queries if q.startswith("count by (__name__")]
        ranges = [q.rsplit("[", 1)[1].rstrip("]") for q in transport.queries if q not in live]
        assert ranges == ["360s"] + ["61s"] * (len(looks) - 1)  # both signals in one query
        assert len(live) == len(looks) - 1  # a chained look asks which series still exist
        elsewhere = looks[3]
        again = src.observe(target, *elsewhere)
        assert transport.queries[-1].endswith("[360s]")
        assert again.candidate == dataset.truth.counts(model.model, CANDIDATE, *elsewhere)
    finally:
        src.close()


def test_a_look_holding_one_scrape_or_none(scrape_prometheus: BackfilledPrometheus) -> None:
    """Scraped every 60 s: increase() has no answer for a 60 s look off the minute (one
    sample in it), and a look between two scrapes saw nothing. Exact counts: the
    sample's rise, and zero."""
    dataset, model = scrape_prometheus.dataset, scrape_model(60.0)
    truth, start = dataset.truth, dataset.start + 600 + 120 + 10
    target = Target(model.model, BASELINE, CANDIDATE)
    src = source_for(scrape_prometheus.url)
    try:
        one = src.observe(target, start, start + 60)
        for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
            counts = getattr(one, role)
            assert counts == truth.counts(model.model, version, start, start + 60)
            assert counts.requests > 0
        none = src.observe(target, start, start + 30)
        for counts in (none.baseline, none.candidate):
            assert counts.requests == 0 and counts.errors == 0
            assert counts.buckets is not None and {b.count for b in counts.buckets} == {0}
        assert none.problems == () and one.problems == ()
        # What increase() answers for the one-scrape look: nothing at all.
        assert (
            _instant(
                scrape_prometheus,
                f'sum(increase(inference_requests_total{{model_name="{model.model}"}}[60s]))',
                start + 60,
            )
            == []
        )
    finally:
        src.close()


def _instant(prometheus: BackfilledPrometheus, promql: str, at: float) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{prometheus.url}/api/v1/query", params={"query": promql, "time": f"{at:.3f}"}
    )
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


@pytest.mark.parametrize("event", ["reset", "vanish", "appear"])
def test_resets_and_pods_that_vanish_or_appear_inside_a_look(
    scrape_prometheus: BackfilledPrometheus, event: str
) -> None:
    """A 60 s look holding the event, at a 30 s scrape, equals the truth, and the event
    is really there: a reset breaks the naive last-minus-first of the summed counters,
    the vanished pod's last (non-zero) samples are before the look, the new pod's
    (non-zero) samples all inside it."""
    dataset, model = scrape_prometheus.dataset, scrape_model(30.0)
    version = CANDIDATE if event == "appear" else BASELINE
    role = "candidate" if version == CANDIDATE else "baseline"
    at = dataset.truth.events(model.model, version)[event]
    start, end = at - 30, at + 30  # the sample showing the event is inside (start, end]
    src = source_for(scrape_prometheus.url)
    try:
        observation = src.observe(Target(model.model, BASELINE, CANDIDATE), start, end)
        exact = dataset.truth.counts(model.model, version, start, end)
        assert getattr(observation, role) == exact
        assert observation.problems == ()
        selector = f'model_name="{model.model}",model_version="{version}"'
        if event == "reset":
            before, after = (
                float(
                    _instant(scrape_prometheus, f"sum(inference_requests_total{{{selector}}})", t)[
                        0
                    ]["value"][1]
                )
                for t in (start, end)
            )
            assert after - before != exact.requests
            return
        index = 2  # scrape_model's appearing and vanishing instance
        pod = f"{model.model}-{version}-{index}"
        (series, *_) = _instant(
            scrape_prometheus, f'inference_requests_total{{{selector},pod="{pod}"}}[400s]', end
        )
        samples = [(float(t), float(v)) for t, v in series["values"]]
        assert max(v for _, v in samples) > 0
        if event == "vanish":
            assert all(t <= start for t, _ in samples)
        else:
            assert all(start < t <= end for t, _ in samples)
    finally:
        src.close()
