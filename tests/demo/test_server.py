"""The demo model server: its answers, its knobs and its shutdown."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from rollout.demo.load import run_load
from rollout.demo.procs import ManagedProcess
from rollout.demo.server import LatencyModel, ServerConfig

if TYPE_CHECKING:
    from conftest import StartServer

BODY = {"user_id": "user-00042", "amount": 99.5, "items": 3}


def _url(config: ServerConfig, path: str) -> str:
    return f"http://127.0.0.1:{config.port}{path}"


def _latencies_ms(process: ManagedProcess) -> list[float]:
    records = [
        json.loads(line) for line in process.log_path.read_text().splitlines() if "{" in line
    ]
    return [r["latency_ms"] for r in records if r.get("route") == "/predict"]


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


@pytest.fixture(scope="module")
def baseline(start_demo: StartServer) -> tuple[ServerConfig, ManagedProcess]:
    return start_demo(version="2.3.1", seed=5)


def test_predict_answers_with_the_version_and_a_deterministic_score(
    baseline: tuple[ServerConfig, ManagedProcess],
) -> None:
    config, _ = baseline
    first = httpx.post(_url(config, "/predict"), json=BODY, headers={"x-request-id": "r-1"})
    second = httpx.post(_url(config, "/predict"), json=BODY)
    assert first.status_code == 200
    assert first.headers["x-model-version"] == "2.3.1"
    answer: dict[str, Any] = first.json()
    assert answer["model_version"] == "2.3.1" and answer["model_name"] == "fraud"
    assert answer["request_id"] == "r-1"
    assert 0.0 < answer["score"] < 1.0
    assert answer["score"] == second.json()["score"]


def test_health_and_a_bad_request(baseline: tuple[ServerConfig, ManagedProcess]) -> None:
    config, _ = baseline
    health = httpx.get(_url(config, "/healthz"))
    assert health.json() == {"status": "ok", "model_version": "2.3.1"}
    bad = httpx.post(_url(config, "/predict"), json={"user_id": "u", "amount": -1, "items": 1})
    assert bad.status_code == 422
    assert "amount" in bad.text


def test_the_latency_factor_makes_the_whole_request_slower(
    start_demo: StartServer, baseline: tuple[ServerConfig, ManagedProcess]
) -> None:
    slow_config, slow = start_demo(version="2.4.0", seed=5, latency_factor=1.4)
    for config in (baseline[0], slow_config):
        result = run_load(_url(config, "/predict"), rps=25, duration=4, seed=5)
        assert result.by_status == {"200": result.sent}  # no --error-rate: no errors
    fast_ms, slow_ms = _latencies_ms(baseline[1]), _latencies_ms(slow)
    # Statistical and loose: the shared machine adds noise to both.
    assert 1.2 <= statistics.median(slow_ms) / statistics.median(fast_ms) <= 1.7
    assert 1.15 <= _p95(slow_ms) / _p95(fast_ms) <= 1.8


def test_the_simulated_work_has_a_p95_near_80ms_scaled_by_the_factor() -> None:
    def p95(factor: float) -> float:
        model = LatencyModel(seed=1, factor=factor)
        totals = []
        for _ in range(5_000):
            d = model.draw()
            totals.append(d.fetch + d.infer + d.serialize)
        return _p95(totals)

    assert 0.060 <= p95(1.0) <= 0.100
    assert p95(1.4) == pytest.approx(1.4 * p95(1.0))


def test_the_error_rate_fails_about_that_fraction(start_demo: StartServer) -> None:
    config, _ = start_demo(version="2.4.0", seed=8, error_rate=0.25)
    result = run_load(_url(config, "/predict"), rps=40, duration=4, seed=8)
    assert set(result.by_status) == {"200", "500"}
    assert 0.12 <= result.by_status["500"] / result.sent <= 0.4
    failed = httpx.post(_url(config, "/predict"), json=BODY)
    for _ in range(50):  # until one fails, to check what a failure looks like
        if failed.status_code == 500:
            break
        failed = httpx.post(_url(config, "/predict"), json=BODY)
    assert failed.status_code == 500
    assert failed.headers["x-model-version"] == "2.4.0"
    assert failed.json()["model_version"] == "2.4.0"


def test_sigterm_stops_the_server_cleanly_with_whole_span_lines(start_demo: StartServer) -> None:
    config, process = start_demo(version="2.4.0", sample_rate=1.0)
    run_load(_url(config, "/predict"), rps=30, duration=1, seed=2)
    process.stop()
    assert process.process is not None and process.process.returncode == 0
    assert "Traceback" not in process.log_path.read_text()
    assert config.spans_file is not None
    lines = config.spans_file.read_text().splitlines()
    assert lines and all(json.loads(line)["trace_id"] for line in lines)


def test_bad_options_exit_2_naming_the_option() -> None:
    argv = [sys.executable, "-m", "rollout.demo.server", "--model", "m", "--version", "v"]
    argv += ["--port", "1", "--error-rate", "1.5"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--error-rate" in done.stderr
