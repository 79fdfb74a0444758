"""PrometheusSource on a real VictoriaMetrics: the same exact counts as the synthetic truth.

VictoriaMetrics (Debian package `victoria-metrics`, 1.79) answers an instant query of a
range selector (`m{...}[360s]` at `time=end`) as Prometheus does: resultType "matrix"
with every raw sample in (end - 360s, end], not deduplicated or aligned to a step (its
`-dedup.minScrapeInterval` is off unless set), and `-search.latencyOffset` does not
hide the newest of them (it does hide them from instant values). So the source reads it
unchanged; the tests below hold it to the same truth as the Prometheus tests, through
pods, routes, counter resets, a pod that vanishes and one that appears, at 15, 30, 60 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rollout.analysis.observation import MetricsSourceError, Target
from rollout.analysis.prometheus import PrometheusSource, is_victoria_metrics
from rollout.demo.procs import free_port
from rollout.spec import PrometheusConfig
from tests.support import scenarios
from tests.support.backfill import past_end
from tests.support.httpserve import serve_text
from tests.support.scenarios import BASELINE, CANDIDATE, INJECTION, STANDARD_MODELS
from tests.support.synthetic import Dataset, SyntheticModel, synthesize
from tests.support.victoria import (
    RunningVictoria,
    prometheus_text,
    start_victoria,
    victoria_with,
)

MODELS = ("counts", "inject")
SCRAPES = (15.0, 30.0, 60.0)
MINUTES = 30.0


def scrape_model(step: float) -> SyntheticModel:
    return scenarios.scrape_model("vm-scrape", step)


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningVictoria, Dataset]]:
    models = [m for m in STANDARD_MODELS if m.model in MODELS]
    models += [scrape_model(step) for step in SCRAPES]
    dataset = synthesize(models, end=past_end(), minutes=MINUTES)
    running = victoria_with(dataset, tmp_path_factory.mktemp("victoria"))
    try:
        yield running, dataset
    finally:
        running.stop()


@pytest.fixture
def source(victoria: tuple[RunningVictoria, Dataset]) -> Iterator[PrometheusSource]:
    src = PrometheusSource(PrometheusConfig(url=victoria[0].url, timeout=10))  # type: ignore[call-arg]
    yield src
    src.close()


def test_the_import_text_has_millisecond_timestamps() -> None:
    text = '# TYPE x counter\nx_total{a="b c"} 5 1700000000\nx_total{a="b"} 6 1700000015.5\n# EOF\n'
    assert list(prometheus_text(text)) == [
        'x_total{a="b c"} 5 1700000000000',
        'x_total{a="b"} 6 1700000015500',
    ]


def test_a_range_selector_returns_the_raw_samples(
    victoria: tuple[RunningVictoria, Dataset],
) -> None:
    """What the source relies on: a matrix of every raw sample in (end - range, end]."""
    running, dataset = victoria
    end = dataset.end
    answer = httpx.get(
        f"{running.url}/api/v1/query",
        params={
            "query": 'inference_requests_total{model_name="vm-scrape-15",status="ok"}[300s]',
            "time": f"{end:.3f}",
        },
    ).json()
    assert answer["status"] == "success" and answer["data"]["resultType"] == "matrix"
    series = answer["data"]["result"]
    assert series
    for row in series:
        stamps = [float(t) for t, _ in row["values"]]
        # Raw 15 s samples, the one at end - 300 s left out (the window is left-open).
        assert stamps == [end - 300 + 15 * k for k in range(1, 21)], row["metric"]


def test_counts_sum_pods_routes_and_a_counter_reset_exactly(
    source: PrometheusSource, victoria: tuple[RunningVictoria, Dataset]
) -> None:
    truth, end = victoria[1].truth, victoria[1].end
    target = Target("counts", BASELINE, CANDIDATE)
    for start, stop in ((end - 15 * 60, end), (end - 60, end), (end - 607.0, end - 7.0)):
        observation = source.observe(target, start, stop)
        assert observation.problems == ()
        assert observation.baseline == truth.counts("counts", BASELINE, start, stop)
        assert observation.candidate == truth.counts("counts", CANDIDATE, start, stop)
    assert observation.baseline.errors and observation.candidate.errors
    assert all(q.series > 0 for q in observation.queries)


def test_injection_strings_match_literally(
    source: PrometheusSource, victoria: tuple[RunningVictoria, Dataset]
) -> None:
    truth, end = victoria[1].truth, victoria[1].end
    odd = source.observe(Target("inject", BASELINE, INJECTION), end - 300, end)
    assert odd.candidate == truth.counts("inject", INJECTION, end - 300, end)
    injected = source.observe(Target("counts", BASELINE, INJECTION), end - 300, end)
    assert injected.candidate.requests is None
    assert injected.baseline == truth.counts("counts", BASELINE, end - 300, end)


@pytest.mark.parametrize("step", SCRAPES)
def test_minute_looks_count_exactly_at_every_scrape_interval(
    source: PrometheusSource, victoria: tuple[RunningVictoria, Dataset], step: float
) -> None:
    """Every 60 s look (on the minute and 7 s off) equals the truth through the reset,
    the vanishing and the appearing pod, and the looks add up to the whole."""
    dataset, model = victoria[1], scrape_model(step)
    target = Target(model.model, BASELINE, CANDIDATE)
    for offset in (0.0, 7.0):
        first = dataset.start + offset
        looks = [(first + 60 * k, first + 60 * k + 60) for k in range(int(MINUTES) - 1)]
        seen = [source.observe(target, start, end) for start, end in looks]
        for (start, end), observation in zip(looks, seen, strict=True):
            assert observation.problems == (), (start, end)
            for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
                expected = dataset.truth.counts(model.model, version, start, end)
                assert getattr(observation, role) == expected, (role, start)
        for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
            whole = dataset.truth.counts(model.model, version, looks[0][0], looks[-1][1])
            assert sum(getattr(o, role).requests for o in seen) == whole.requests
            assert sum(getattr(o, role).errors for o in seen) == whole.errors
            assert whole.errors and whole.errors > 0


def test_victoria_metrics_is_told_from_prometheus_by_its_buildinfo(
    victoria: tuple[RunningVictoria, Dataset],
) -> None:
    """Asked once, on the first empty exemplars answer: only then is "no exemplars from
    this backend" said instead of "none found"; anything unreadable is "not known"."""
    with httpx.Client(base_url=victoria[0].url) as http:
        assert is_victoria_metrics(http)
    prometheus = '{"status":"success","data":{"version":"2.42.0","revision":"x"}}'
    for body, kind in ((prometheus, "application/json"), ("<html/>", "text/html")):
        server = serve_text(body, content_type=kind)
        try:
            with httpx.Client(base_url=server.url) as http:
                assert not is_victoria_metrics(http)
        finally:
            server.stop()
    with httpx.Client(base_url=f"http://127.0.0.1:{free_port()}", timeout=2) as http:
        assert not is_victoria_metrics(http)


def test_an_empty_exemplars_answer_from_victoria_says_so(
    source: PrometheusSource, victoria: tuple[RunningVictoria, Dataset]
) -> None:
    end = victoria[1].end
    with pytest.raises(MetricsSourceError, match="no exemplars from this backend"):
        source.exemplars(Target("counts", BASELINE, CANDIDATE), CANDIDATE, end - 300, end)


def test_the_default_latency_offset_hides_new_data_from_instant_values_not_raw_samples(
    tmp_path: Path,
) -> None:
    """`-search.latencyOffset` (default 30s) on 1.79: an instant query's value and
    query_range ignore the newest 30 s, but a range selector's raw samples (what the
    counts read) include them. Custom metrics (instant queries) see data 30 s late."""
    running = start_victoria(tmp_path, latency_offset="30s")
    try:
        now = float(int(time.time()))
        lines = [
            f'fresh_total{{a="b"}} {v} {round((now - age) * 1000)}'
            for v, age in ((1, 60), (2, 20), (3, 5))
        ]
        running.import_lines(iter(lines))

        def query(promql: str) -> list[object]:
            answer = httpx.get(
                f"{running.url}/api/v1/query", params={"query": promql, "time": f"{now:.0f}"}
            ).json()
            result: list[object] = answer["data"]["result"]
            return result

        deadline = time.monotonic() + 30
        while not query('fresh_total{a="b"}[120s]') and time.monotonic() < deadline:
            time.sleep(0.2)
        raw = query('fresh_total{a="b"}[120s]')
        assert [v for _, v in raw[0]["values"]] == ["1", "2", "3"]  # type: ignore[index]
        assert query('fresh_total{a="b"}')[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        running.stop()
