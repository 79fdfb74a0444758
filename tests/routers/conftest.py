"""Real parts for router tests: two tiny HTTP backends and an HAProxy in front of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rollout.demo.haproxy import RunningHAProxy, start_haproxy
from tests.support.httpserve import StaticServer, serve_text

BASELINE_VERSION = "2.3.1"
CANDIDATE_VERSION = "2.4.0"


@dataclass(frozen=True)
class Backends:
    baseline: StaticServer
    candidate: StaticServer


@pytest.fixture
def backends() -> Iterator[Backends]:
    """Two real HTTP servers, each answering every GET with its model version."""
    baseline = serve_text(BASELINE_VERSION, "text/plain")
    candidate = serve_text(CANDIDATE_VERSION, "text/plain")
    try:
        yield Backends(baseline, candidate)
    finally:
        baseline.stop()
        candidate.stop()


@pytest.fixture
def haproxy(tmp_path: Path, backends: Backends) -> Iterator[RunningHAProxy]:
    """A real HAProxy (all traffic on the baseline at start), stopped by its pid."""
    running = start_haproxy(
        tmp_path / "haproxy",
        backends.baseline.address,
        backends.candidate.address,
        admin_tcp=True,
    )
    try:
        yield running
    finally:
        running.stop()


def count_versions(url: str, requests: int) -> Counter[str]:
    """Which version answered each of `requests` GETs sent through `url`."""
    answers: Counter[str] = Counter()
    with httpx.Client(base_url=url, timeout=5.0) as client:
        for _ in range(requests):
            response = client.get("/predict")
            answers[
                response.text if response.status_code == 200 else str(response.status_code)
            ] += 1
    return answers
