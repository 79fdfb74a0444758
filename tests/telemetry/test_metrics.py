"""The controller's /metrics, scraped by a real Prometheus while a rollout runs on the
driver's bench (real HAProxy, backfilled Prometheus, replay clock), and queried there as the
Grafana dashboards query it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from rollout.demo.prom import RunningPrometheus, start_prometheus
from rollout.driver import run_from_spec
from rollout.exit_codes import ExitCode
from rollout.telemetry.metrics import MetricsServer, RolloutMetrics, serve_metrics
from tests.support.backfill import BackfilledPrometheus
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.replay import POLICY, ReplayClock, Stack, make_spec
from tests.support.scenarios import BASELINE, CANDIDATE


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[RolloutMetrics, MetricsServer, RunningPrometheus]]:
    """The metrics on a free port, and a Prometheus scraping them every second."""
    metrics = RolloutMetrics()
    server = serve_metrics(metrics.registry, 0)
    try:
        with start_prometheus(
            tmp_path / "scraper", {"rollout": [f"127.0.0.1:{server.port}"]}, exemplars=False
        ) as prometheus:
            yield metrics, server, prometheus
    finally:
        server.stop()


def query(prometheus: RunningPrometheus, promql: str) -> dict[str, float]:
    """Instant query -> {the labels that differ, joined: value}."""
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=10)
    answer.raise_for_status()
    found = {}
    for series in answer.json()["data"]["result"]:
        labels = series["metric"]
        key = ",".join(
            f"{k}={v}"
            for k, v in sorted(labels.items())
            if k in ("model_version", "decision", "phase", "metric")
        )
        found[key] = float(series["value"][1])
    return found


def scraped_until(prometheus: RunningPrometheus, promql: str, timeout: float = 60.0) -> None:
    """Wait (bounded) until Prometheus has scraped a sample satisfying `promql`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(prometheus, promql):
            return
        time.sleep(0.5)
    raise AssertionError(f"{promql} stayed empty for {timeout}s")


def run(
    model: str, stack: Stack, source_url: str, dataset_start: float, tmp_path: Path,
    metrics: RolloutMetrics,
) -> ExitCode:  # fmt: skip
    return run_from_spec(
        make_spec(model, stack.haproxy, source_url),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=None,
        console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
        clock=ReplayClock(dataset_start + 120),
        observers=[metrics],
    )


def test_a_promotion_in_metrics_as_the_dashboards_read_them(
    stack: Stack,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    scraped: tuple[RolloutMetrics, MetricsServer, RunningPrometheus],
) -> None:
    metrics, _, prometheus = scraped
    start = synthetic_prometheus.dataset.start
    code = run("gate-same", stack, synthetic_prometheus.url, start, tmp_path, metrics)
    assert code is ExitCode.PROMOTED
    scraped_until(prometheus, 'rollout_decisions_total{decision="promoted"} == 1')

    model = 'model_name="gate-same"'
    # The release dashboard's panel query, variables substituted.
    versions = f'model_version=~"{CANDIDATE}|{BASELINE}"'
    weights = query(prometheus, f"max by (model_version) (rollout_weight{{{model}, {versions}}})")
    assert weights == {f"model_version={CANDIDATE}": 100.0, f"model_version={BASELINE}": 0.0}
    decisions = query(prometheus, f"rollout_decisions_total{{{model}}}")
    assert decisions == {
        f"decision=aborted,model_version={CANDIDATE}": 0.0,
        f"decision=paused,model_version={CANDIDATE}": 0.0,
        f"decision=promoted,model_version={CANDIDATE}": 1.0,
        f"decision=rolled_back,model_version={CANDIDATE}": 0.0,
        f"decision=step,model_version={CANDIDATE}": 2.0,
    }
    assert query(prometheus, f"rollout_phase{{{model}}} == 1") == {"phase=Promoted": 1.0}
    looks = query(prometheus, f"rollout_analysis_seconds_count{{{model}}}")
    assert looks and next(iter(looks.values())) >= 6  # two 3-minute steps of 1-minute looks
    e_values = query(prometheus, f"rollout_e_value{{{model}}}")
    assert {"metric=latency_p95", "metric=error_rate"} <= set(e_values)
    assert all(0 <= v < 1 / POLICY.alpha for v in e_values.values())  # promoted: none crossed
    assert query(prometheus, f"rollout_source_errors_total{{{model}}}") == {"": 0.0}
    labels = httpx.get(
        f"{prometheus.url}/api/v1/series", params={"match[]": "rollout_weight"}, timeout=10
    ).json()["data"][0]
    assert {"namespace": "default", "rollout": "gate-same"}.items() <= labels.items()


def test_a_failing_metrics_source_is_counted_and_a_rollback_seen(
    stack: Stack,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    scraped: tuple[RolloutMetrics, MetricsServer, RunningPrometheus],
) -> None:
    """The rollout's Prometheus answers 500 through a fault proxy: every failed read is
    counted, and past the outage limit the rollout rolls back."""
    metrics, _, prometheus = scraped
    start = synthetic_prometheus.dataset.start
    with FaultProxy(synthetic_prometheus.url) as proxy:
        code = run_from_spec(
            make_spec("gate-same", stack.haproxy, proxy.url),
            POLICY,
            state_dir=tmp_path / "state",
            report_dir=None,
            console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
            clock=_FailingAfter(start + 120, proxy),
            observers=[metrics],
        )
    assert code is ExitCode.ROLLED_BACK
    scraped_until(prometheus, 'rollout_decisions_total{decision="rolled_back"} == 1')
    model = 'model_name="gate-same"'
    errors = query(prometheus, f"rollout_source_errors_total{{{model}}}")
    assert errors[""] >= 2
    assert query(prometheus, f"rollout_phase{{{model}}} == 1") == {"phase=RolledBack": 1.0}
    weights = query(prometheus, f"rollout_weight{{{model}}}")
    assert weights == {f"model_version={CANDIDATE}": 0.0, f"model_version={BASELINE}": 100.0}


class _FailingAfter(ReplayClock):
    """The replay clock; from its first sleep on (after the preflight and the first
    weights), the proxy answers 500."""

    def __init__(self, start: float, proxy: FaultProxy) -> None:
        super().__init__(start)
        self.proxy = proxy

    def sleep(self, seconds: float) -> None:
        self.proxy.switch(Fault.HTTP_500)
        super().sleep(seconds)
