"""Whole rollouts through the controller: a fake API server (the only fake), a real
Prometheus scraping real model servers, a real HAProxy moving the traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.demo.launcher import MODEL, DemoStack
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE
from rollout.routers.haproxy import HAProxyRouter
from rollout.telemetry.metrics import RolloutMetrics
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    ControllerThread,
    condition,
    create,
    decided,
    install_crd,
    reasons,
    rollout_document,
    status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RPS = 40.0


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        install_crd(server.api_client())
        yield server


def haproxy(stack: DemoStack) -> HAProxyRouter:
    assert stack.haproxy is not None
    return HAProxyRouter(stack.haproxy.router_config())


@pytest.mark.parametrize(
    ("scenario", "phase", "weights"),
    [("latency", "RolledBack", ALL_BASELINE), ("healthy", "Promoted", ALL_CANDIDATE)],
)
def test_a_rollout_through_the_controller_ends_as_the_data_says(
    tmp_path: Path, api: FakeApiServer, scenario: str, phase: str, weights: object
) -> None:
    client = api.api_client()
    metrics = RolloutMetrics()  # what `rollout controller --metrics-port` serves
    slower = 4.0 if scenario == "latency" else None  # large on a busy machine too
    with DemoStack(
        tmp_path / "stack", scenario, RPS, seed=5, candidate_latency_factor=slower
    ).start() as stack:
        create(client, rollout_document(stack, "fraud"))
        with ControllerThread(client, observer=metrics):
            found = decided(client, "fraud")
            if phase == "RolledBack":  # the evidence follows the decision
                found = wait_for("trace IDs", lambda: status(client, "fraud").get("traceIds"))
                found = status(client, "fraud")
        assert found["phase"] == phase, found.get("message")
        assert haproxy(stack).get_weights() == weights  # the router itself says so
    assert found["decision"] == {"RolledBack": "rolled_back", "Promoted": "promoted"}[phase]
    assert found["observedGeneration"] == 1
    analysis = found["analysis"]
    assert analysis["looks"] >= 1 and analysis["comparisons"]
    if phase == "RolledBack":
        assert analysis["decidedBy"] == "latency_p95"
        assert found["traceIds"]  # the evidence: exemplars of the slow candidate requests
    assert condition(found, "InvalidSpec")["status"] == "False"
    assert condition(found, "Progressing")["status"] == "False"
    seen = reasons(client, "fraud")
    assert seen.count("Step") == (1 if phase == "RolledBack" else 2)
    samples = [s for m in metrics.registry.collect() for s in m.samples]
    decisions = {
        s.labels["decision"]: s.value
        for s in samples
        if s.name == "rollout_decisions_total" and s.labels["model_name"] == MODEL
    }
    assert decisions[found["decision"]] == 1
    timed = [s.value for s in samples if s.name == "rollout_analysis_seconds_count"]
    assert timed and timed[0] >= 1  # every look's reconcile timed
    assert phase in seen
