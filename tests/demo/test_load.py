"""The load generator against a real demo server: counts, bounds, stopping, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from rollout.demo.load import TRANSPORT_ERROR, UNKNOWN_VERSION, BackgroundLoad, run_load
from rollout.demo.procs import ManagedProcess, free_port
from rollout.demo.server import ServerConfig

if TYPE_CHECKING:
    from conftest import StartServer


@pytest.fixture(scope="module")
def server(start_demo: StartServer) -> tuple[ServerConfig, ManagedProcess]:
    return start_demo(version="2.4.0", error_rate=0.2, seed=9)


def _predict_url(config: ServerConfig) -> str:
    return f"http://127.0.0.1:{config.port}/predict"


def _request_ids(process: ManagedProcess) -> list[str]:
    lines = [json.loads(x) for x in process.log_path.read_text().splitlines() if x.startswith("{")]
    return [r["request_id"] for r in lines if r.get("route") == "/predict"]


def test_answers_are_counted_per_version_and_status_with_one_request_id_each(
    server: tuple[ServerConfig, ManagedProcess],
) -> None:
    config, process = server
    before = len(_request_ids(process))
    result = run_load(_predict_url(config), rps=40, duration=30, max_requests=60, seed=4)
    assert result.sent == 60 and result.skipped == 0
    assert result.by_version == {"2.4.0": 60}
    assert sum(result.by_status.values()) == 60
    assert set(result.by_status) == {"200", "500"}
    assert result.errors == result.by_status["500"]
    assert result.by_version_status == {"2.4.0": result.by_status}
    new_ids = _request_ids(process)[before:]
    assert len(new_ids) == 60 and len(set(new_ids)) == 60


def test_background_load_stops_by_itself(server: tuple[ServerConfig, ManagedProcess]) -> None:
    load = BackgroundLoad(_predict_url(server[0]), rps=20, duration=1.0, seed=5).start()
    deadline = time.monotonic() + 30
    while load.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not load.running()
    result = load.stop()
    assert 1 <= result.sent <= 21
    assert result.answered == result.sent


def test_background_load_stops_when_asked(server: tuple[ServerConfig, ManagedProcess]) -> None:
    load = BackgroundLoad(_predict_url(server[0]), rps=20, duration=600, seed=6).start()
    deadline = time.monotonic() + 30
    while load.snapshot().sent < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    result = load.stop()
    assert not load.running()
    assert 5 <= result.sent < 20 * 600
    assert sum(result.by_status.values()) == result.sent  # every request in flight was awaited


def test_no_server_is_counted_as_transport_errors() -> None:
    result = run_load(f"http://127.0.0.1:{free_port()}/predict", rps=20, duration=5, max_requests=5)
    assert result.by_status == {TRANSPORT_ERROR: 5}
    assert result.by_version == {UNKNOWN_VERSION: 5}
    assert result.errors == 5 and result.answered == 0


def test_the_cli_prints_the_counts_as_json(server: tuple[ServerConfig, ManagedProcess]) -> None:
    argv = [sys.executable, "-m", "rollout.demo.load", "--url", _predict_url(server[0])]
    argv += ["--rps", "20", "--duration", "10", "--max-requests", "8"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["sent"] == 8
    assert counts["by_version"] == {"2.4.0": 8}


def test_a_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rps"):
        run_load("http://127.0.0.1:1/predict", rps=0, duration=1)
