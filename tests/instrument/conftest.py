"""A real demo server (subprocess on a free port) with a known mix of traffic behind it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollout.demo.load import LoadResult, run_load
from rollout.demo.procs import ManagedProcess, free_port
from rollout.demo.server import ServerConfig, start_server

SLOW_SECONDS = 0.08


@dataclass(frozen=True)
class Served:
    config: ServerConfig
    process: ManagedProcess
    load: LoadResult

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def spans_file(self) -> Path:
        assert self.config.spans_file is not None
        return self.config.spans_file

    def spans(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.spans_file.read_text().splitlines()]

    def trace_spans(self, trace_id: str, names: set[str]) -> list[dict[str, Any]]:
        """The trace's spans once those named are exported. A trace is exported when its root
        span ends, which the server does after the client has the response: wait for it
        (bounded) rather than race it on a busy machine."""
        deadline = time.monotonic() + 20.0
        while True:
            spans = [s for s in self.spans() if s["trace_id"] == trace_id]
            if names <= {s["name"] for s in spans} or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)

    def kept_trace_ids(self) -> set[str]:
        return {span["trace_id"] for span in self.spans()}

    def request_logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.process.log_path.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("route") == "/predict":
                    lines.append(record)
        return lines

    def predict(
        self, headers: dict[str, str] | None = None, user_id: str = "u-1"
    ) -> httpx.Response:
        body = {"user_id": user_id, "amount": 42.0, "items": 2}
        return httpx.post(f"{self.url}/predict", json=body, headers=headers or {}, timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """10% errors, 10% head rate, a fixed 80 ms slow rule; 200 requests of load already sent."""
    tmp = tmp_path_factory.mktemp("served")
    config = ServerConfig(
        model="fraud",
        version="2.4.0",
        port=free_port(),
        error_rate=0.1,
        spans_file=tmp / "spans.jsonl",
        sample_rate=0.1,
        slow_quantile=None,
        slow_threshold_seconds=SLOW_SECONDS,
        seed=3,
    )
    process = start_server(config, tmp / "server.log")
    try:
        load = run_load(f"http://127.0.0.1:{config.port}/predict", rps=40, duration=5, seed=3)
        yield Served(config, process, load)
    finally:
        process.stop()
