"""The driver's test bench: a replay clock inside backfilled history, and a real HAProxy in
front of two servers that answer with their version, so traffic can be counted per version.

The backfilled history lies hours in the past, so the driver runs on a replay clock that
starts inside it and advances when the driver sleeps: a rollout of ten minutes of data takes a
few seconds, and every look queries Prometheus at its own past time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rollout.demo.haproxy import RunningHAProxy, start_haproxy
from rollout.spec import Policy, RolloutSpec
from tests.support.httpserve import StaticServer, serve_text
from tests.support.scenarios import BASELINE, CANDIDATE

# The driver's policy on this bench: two 3-minute steps of 1-minute looks over the backfill.
POLICY = Policy.model_validate(
    {
        "steps": [{"weight": 20, "hold": "3m"}, {"weight": 50, "hold": "3m"}],
        "analysis": {"interval": "1m"},
        "minRequests": 200,
        "inconclusiveGrace": "1m",
        "outage": {"maxDuration": "2m"},
    }
)


@dataclass
class ReplayClock:
    """Time inside the backfilled history; `at` runs a fault once that time is reached."""

    time: float
    at: dict[float, Callable[[], None]] = field(default_factory=dict)

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds
        for when in sorted(t for t in self.at if t <= self.time):
            self.at.pop(when)()


@dataclass(frozen=True)
class Stack:
    haproxy: RunningHAProxy
    baseline: StaticServer
    candidate: StaticServer


@contextmanager
def running_stack(directory: Path) -> Iterator[Stack]:
    """HAProxy (its files under `directory`) in front of two servers answering their version."""
    baseline = serve_text(BASELINE, "text/plain")
    candidate = serve_text(CANDIDATE, "text/plain")
    try:
        haproxy = start_haproxy(directory, baseline.address, candidate.address)
        try:
            yield Stack(haproxy, baseline, candidate)
        finally:
            haproxy.stop()
    finally:
        baseline.stop()
        candidate.stop()


def answered_by(haproxy: RunningHAProxy, requests: int = 40) -> Counter[str]:
    """Which version answers requests sent through HAProxy."""
    with httpx.Client(base_url=haproxy.url, timeout=5.0) as client:
        return Counter(client.get("/predict").text for _ in range(requests))


def make_spec(model: str, haproxy: RunningHAProxy, prometheus_url: str) -> RolloutSpec:
    return RolloutSpec.model_validate(
        {
            "kind": "ModelRollout",
            "metadata": {"name": model},
            "spec": {
                "model": model,
                "baseline": {"version": BASELINE},
                "candidate": {"version": CANDIDATE},
                "router": haproxy.router_config().model_dump(by_alias=True),
                "prometheus": {"url": prometheus_url},
                "evidence": {"traceLinkTemplate": "http://tempo/trace/{trace_id}"},
            },
        }
    )
