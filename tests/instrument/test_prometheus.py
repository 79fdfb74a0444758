"""A real Prometheus with exemplar storage scrapes the demo server: its trace IDs resolve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from rollout.demo.load import BackgroundLoad
from rollout.demo.procs import ManagedProcess, free_port

if TYPE_CHECKING:
    from conftest import Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prometheus(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: model\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{served.config.port}']}}]\n"
    )
    port = free_port()
    argv = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=exemplar-storage",
    ]
    with ManagedProcess("prometheus", argv, tmp / "prometheus.log", cwd=tmp) as process:
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/-/ready")
        yield url


def _exemplar_trace_ids(prometheus: str, query: str) -> set[str]:
    now = time.time()
    response = httpx.get(
        f"{prometheus}/api/v1/query_exemplars",
        params={"query": query, "start": now - 600, "end": now + 60},
        timeout=5,
    )
    response.raise_for_status()
    series: list[dict[str, Any]] = response.json()["data"]
    return {
        exemplar["labels"]["trace_id"] for item in series for exemplar in item.get("exemplars", [])
    }


def _wait_for_exemplars(prometheus: str, query: str, at_least: int) -> set[str]:
    deadline = time.monotonic() + 40
    found: set[str] = set()
    while time.monotonic() < deadline and len(found) < at_least:
        found = _exemplar_trace_ids(prometheus, query)
        time.sleep(0.5)
    return found


def test_exemplar_trace_ids_from_prometheus_resolve_to_exported_spans(
    served: Served, prometheus: str
) -> None:
    # Load until Prometheus has scraped enough exemplars (or the deadline), then stop it.
    load = BackgroundLoad(f"{served.url}/predict", rps=20, duration=45, seed=11).start()
    latency = 'inference_latency_seconds_bucket{model_name="fraud",model_version="2.4.0"}'
    errors = 'inference_requests_total{model_version="2.4.0",status="error"}'
    try:
        latency_ids = _wait_for_exemplars(prometheus, latency, at_least=5)
        error_ids = _wait_for_exemplars(prometheus, errors, at_least=1)
    finally:
        load.stop()

    assert len(latency_ids) >= 5
    assert error_ids
    kept = served.kept_trace_ids()
    assert latency_ids <= kept
    assert error_ids <= kept
    failed_roots = {
        s["trace_id"] for s in served.spans() if s["kind"] == "SERVER" and s["status"] == "ERROR"
    }
    assert error_ids <= failed_roots


def test_prometheus_reads_the_contract_series(served: Served, prometheus: str) -> None:
    query = 'sum by (model_version, status) (inference_requests_total{model_name="fraud"})'
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    result = response.json()["data"]["result"]
    assert {(r["metric"]["model_version"], r["metric"]["status"]) for r in result} == {
        ("2.4.0", "ok"),
        ("2.4.0", "error"),
    }
