"""Demo model servers started as real subprocesses on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.demo.procs import ManagedProcess, free_port
from rollout.demo.server import ServerConfig, start_server

StartServer = Callable[..., tuple[ServerConfig, ManagedProcess]]


@pytest.fixture(scope="module")
def start_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """`start_demo(version=..., **ServerConfig fields)`; every server is stopped at the end."""
    started: list[ManagedProcess] = []

    def start(**fields: Any) -> tuple[ServerConfig, ManagedProcess]:
        tmp: Path = tmp_path_factory.mktemp("server")
        options: dict[str, Any] = {"model": "fraud", "version": "1.0.0", "seed": 1}
        options |= {"spans_file": tmp / "spans.jsonl", **fields}
        config = ServerConfig(port=free_port(), **options)
        process = start_server(config, tmp / "server.log")
        started.append(process)
        return config, process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
