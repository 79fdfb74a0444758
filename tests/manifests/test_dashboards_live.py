"""Every query of the three dashboards, substituted as Grafana does, on a real Prometheus that
scrapes the demo's model servers under load and evaluates the SLO rules.

A healthy 1.9.0 and a bad 1.10.0 (25% errors, every stage 3x slower) take the same load;
a query that fails, or comes back empty while its data exists, fails the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from rollout.demo.load import BackgroundLoad, LoadResult
from rollout.demo.prom import RunningPrometheus, start_prometheus
from tests.manifests.grafana import Query, Selection, TimeRange, interpolate, queries, resolve
from tests.manifests.grafana import load as load_dashboards
from tests.manifests.render import DASHBOARDS, RULES, rule_groups

if TYPE_CHECKING:
    from tests.demo.conftest import StartServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "fraud"
PREVIOUS = "1.9.0"
RELEASE = "1.10.0"  # after 1.9.0 in natural order, before it alphabetically
RELEASE_ERROR_RATE = 0.25
SCRAPE_SECONDS = 1.0
LOAD_RPS = 15.0
LOAD_SECONDS = 30.0
DASHBOARD_FILES = sorted(p.name for p in DASHBOARDS.glob("*.json"))

# Metrics the dashboards read that nothing in the demo stack exports: their queries must
# still evaluate, and only they may come back empty. The test fails once one appears.
NOT_IN_DEMO = {
    "rollout_weight": "the rollout controller's gauge of the weight it set, per model_version",
    "rollout_decisions_total": "the rollout controller's counter of decisions (label decision)",
}


@dataclass(frozen=True)
class DemoStack:
    url: str
    time_range: TimeRange
    loads: dict[str, LoadResult]  # per version, what its clients saw
    exported: frozenset[str]  # metric names scraped from the model servers

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def label_values(self, label: str, selector: str | None) -> list[str]:
        bounds = {"start": self.time_range.start, "end": self.time_range.end}
        match = {"match[]": selector} if selector else {}
        values: list[str] = self.get(f"/api/v1/label/{label}/values", **bounds, **match)
        return values

    def evaluate(self, query: Query, text: str) -> list[dict[str, Any]]:
        """The result as Grafana would ask for it: instant at the end, or a range."""
        if query.is_variable:
            raise ValueError("variables are label_values(), not PromQL")
        if query.instant:
            result: list[dict[str, Any]] = self.get(
                "/api/v1/query", query=text, time=self.time_range.end
            )["result"]
            return result
        step = query.step or self.time_range.interval
        start = self.time_range.start - self.time_range.start % step  # aligned, as Grafana does
        data = self.get(
            "/api/v1/query_range", query=text, start=start, end=self.time_range.end, step=step
        )
        result = data["result"]
        return result


def _wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting ({timeout:.0f}s) for {what}")
        time.sleep(0.5)


def _with_rules(prometheus: RunningPrometheus) -> None:
    """Add the SLO rules file to the running Prometheus' config and reload it."""
    config = yaml.safe_load(prometheus.config_path.read_text(encoding="utf-8"))
    config["rule_files"] = [str(RULES)]
    prometheus.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    response = httpx.post(f"{prometheus.url}/-/reload", timeout=30)
    assert response.status_code == 200, f"reload with {RULES} refused: {response.text}"


@pytest.fixture(scope="module")
def demo(start_demo: StartServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    previous, _ = start_demo(model=MODEL, version=PREVIOUS, seed=1)
    release, _ = start_demo(
        model=MODEL,
        version=RELEASE,
        seed=2,
        error_rate=RELEASE_ERROR_RATE,
        latency_factor=3.0,
    )
    targets = [f"127.0.0.1:{c.port}" for c in (previous, release)]
    prometheus = start_prometheus(
        tmp_path_factory.mktemp("prometheus"),
        {"model": targets},
        scrape_interval=f"{SCRAPE_SECONDS:.0f}s",
    )
    try:
        _with_rules(prometheus)
        started = time.time()
        loads = {
            config.version: BackgroundLoad(
                f"http://127.0.0.1:{config.port}/predict", LOAD_RPS, LOAD_SECONDS, seed=i
            ).start()
            for i, config in enumerate((previous, release))
        }
        _wait_for(
            "the load to end",
            lambda: not any(load.running() for load in loads.values()),
            LOAD_SECONDS + 60,
        )
        results = {version: load.stop() for version, load in loads.items()}
        stack = DemoStack(
            prometheus.url,
            TimeRange(started - 10, time.time(), SCRAPE_SECONDS),
            results,
            frozenset(),
        )

        def scraped_all() -> bool:
            counted = stack.get(
                "/api/v1/query",
                query=f'sum by (model_version) (inference_requests_total{{model_name="{MODEL}"}})',
            )["result"]
            seen = {s["metric"]["model_version"]: float(s["value"][1]) for s in counted}
            return seen == {v: float(r.by_version.get(v, 0)) for v, r in results.items()}

        _wait_for("Prometheus to scrape every answered request", scraped_all)
        _wait_for(
            "the rules' first evaluation on the full counts",
            lambda: (
                len(
                    stack.get("/api/v1/query", query="model_version:inference_requests:rate5m")[
                        "result"
                    ]
                )
                == 2
            ),
        )
        time.sleep(2 * SCRAPE_SECONDS)  # one more rule evaluation after the last scrape
        exported = stack.get("/api/v1/label/__name__/values", **{"match[]": '{job="model"}'})
        yield DemoStack(
            prometheus.url,
            TimeRange(started - 10, time.time(), SCRAPE_SECONDS),
            results,
            frozenset(exported),
        )
    finally:
        prometheus.stop()


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards(DASHBOARDS)


def _selections(demo: DemoStack, board: dict[str, Any]) -> dict[str, Selection]:
    return resolve(board, demo.label_values)


def _series(result: list[dict[str, Any]], label: str = "model_version") -> dict[str, list[float]]:
    """Label value -> the series' finite values (a range result's or an instant's one)."""
    out: dict[str, list[float]] = {}
    for series in result:
        points = series.get("values") or [series["value"]]
        values = [float(v) for _, v in points if v not in ("NaN", "+Inf", "-Inf")]
        out.setdefault(series["metric"].get(label, ""), []).extend(values)
    return out


def _panel_query(board: dict[str, Any], title: str, ref: str = "A") -> Query:
    found = [
        q
        for q in queries("", board)
        if q.where.startswith(f"panel {title!r}") and q.where.endswith(ref)
    ]
    assert len(found) == 1, f"no single panel {title!r} target {ref} in {board['title']}"
    return found[0]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_query_answers_and_has_data_where_the_demo_has_it(
    demo: DemoStack, dashboards: dict[str, dict[str, Any]], name: str
) -> None:
    board = dashboards[name]
    selections = _selections(demo, board)
    problems: list[str] = []
    count = 0
    for query in queries(name, board):
        count += 1
        text = interpolate(query.expr, selections, demo.time_range)
        if query.is_variable:
            continue  # resolved above: each has values, or resolve() raised
        try:
            result = demo.evaluate(query, text)
        except AssertionError as exc:
            problems.append(f"{query.where}: Prometheus refused it: {exc}\n{text}")
            continue
        absent = query.metrics() & NOT_IN_DEMO.keys()
        if absent and result:
            problems.append(
                f"{query.where}: answers, yet reads {sorted(absent)} listed in NOT_IN_DEMO: the "
                f"demo exports it now, drop it from the list\n{text}"
            )
        elif not absent and not result:
            problems.append(f"{query.where}: empty, though the demo has its data\n{text}")
    assert count >= 5
    assert not problems, f"{name}:\n\n" + "\n\n".join(problems)


def test_the_dashboards_read_only_the_demos_metrics_the_rules_and_the_listed_ones(
    demo: DemoStack, dashboards: dict[str, dict[str, Any]]
) -> None:
    used = {
        metric
        for name, board in dashboards.items()
        for q in queries(name, board)
        for metric in q.metrics()
    }
    recorded = {
        rule["record"]
        for group in rule_groups(RULES.read_text())
        for rule in group["rules"]
        if "record" in rule
    }
    assert "inference_requests_total" in demo.exported
    unknown = used - demo.exported - recorded - {"ALERTS"} - NOT_IN_DEMO.keys()
    assert not unknown, f"dashboards read metrics nobody exports or records: {sorted(unknown)}"
    assert NOT_IN_DEMO.keys() <= used, "NOT_IN_DEMO lists a metric no dashboard reads"
    assert NOT_IN_DEMO.keys().isdisjoint(demo.exported), "the demo exports a NOT_IN_DEMO metric"


def test_the_overview_shows_which_version_fails_and_is_slow(
    demo: DemoStack, dashboards: dict[str, dict[str, Any]]
) -> None:
    board = dashboards["model-overview.json"]
    selections = _selections(demo, board)
    assert selections["version"] == Selection((RELEASE, PREVIOUS), multi=True)

    def run(title: str) -> dict[str, list[float]]:
        query = _panel_query(board, title)
        return _series(demo.evaluate(query, interpolate(query.expr, selections, demo.time_range)))

    availability = run("Availability over the time range")
    assert availability[PREVIOUS] == [1.0]
    seen = demo.loads[RELEASE]
    clients_saw = 1 - seen.by_status.get("500", 0) / seen.answered
    assert abs(availability[RELEASE][0] - clients_saw) < 0.03, (availability, clients_saw)
    assert 0.6 < availability[RELEASE][0] < 0.9

    errors = run("Error %")
    assert max(errors[PREVIOUS]) == 0.0
    assert 10 < median(errors[RELEASE]) < 40

    p95 = run("P95 latency")
    assert median(p95[RELEASE]) > 1.5 * median(p95[PREVIOUS])
    assert median(p95[RELEASE]) > 0.15  # 3x the demo's ~75 ms: beyond the SLO


def test_the_release_view_puts_the_newest_version_beside_the_one_before(
    demo: DemoStack, dashboards: dict[str, dict[str, Any]]
) -> None:
    board = dashboards["model-release.json"]
    selections = _selections(demo, board)
    assert selections["version"] == Selection((RELEASE,), multi=False)
    assert selections["previous"] == Selection((PREVIOUS,), multi=False)
    query = _panel_query(board, "Traffic: observed share and the controller's weight")
    share = _series(demo.evaluate(query, interpolate(query.expr, selections, demo.time_range)))
    # Both took the same offered load: about half each.
    assert set(share) == {RELEASE, PREVIOUS}
    assert all(30 < median(values) < 70 for values in share.values()), share


def test_the_deep_dive_shows_the_slow_versions_model_infer_stage(
    demo: DemoStack, dashboards: dict[str, dict[str, Any]]
) -> None:
    board = dashboards["model-deep-dive.json"]
    selections = _selections(demo, board)
    query = _panel_query(board, "P95: feature fetch against model.infer", "B")
    infer = _series(demo.evaluate(query, interpolate(query.expr, selections, demo.time_range)))
    assert set(infer) == {RELEASE, PREVIOUS}
    # Every stage of the release is 3x slower: its inference too.
    assert median(infer[RELEASE]) > 1.5 * median(infer[PREVIOUS]), infer


def test_the_rules_evaluate_on_the_demo_and_alert_on_the_bad_version_only(demo: DemoStack) -> None:
    groups = demo.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in rule_groups(RULES.read_text()))
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken

    def alerting() -> dict[str, set[str]]:
        alerts = demo.get("/api/v1/alerts")["alerts"]
        by_version: dict[str, set[str]] = {}
        for alert in alerts:
            by_version.setdefault(alert["labels"]["model_version"], set()).add(
                alert["labels"]["alertname"]
            )
        expected = {"HighErrorRateFastBurn", "ErrorBudgetBurn", "LatencyP95High"}
        return by_version if expected <= by_version.get(RELEASE, set()) else {}

    by_version = _wait_for("the bad version's alerts (pending or firing)", alerting, 30)
    assert not {"HighErrorRateFastBurn", "ErrorBudgetBurn"} & by_version.get(PREVIOUS, set())
