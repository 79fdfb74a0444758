"""Whole rollouts through the controller with the `gateway-api` router: the HTTPRoute lives
in the fake API server (the only fake), a gateway data plane (tests/routers/gateway_plane.py)
splits real requests between the real model servers by that route's weights, and a real
Prometheus scrapes the servers. So the metrics follow the route the controller writes, and
the decision is the one the data calls for."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.demo.launcher import BASELINE_VERSION, CANDIDATE_VERSION, DemoStack
from rollout.demo.load import BackgroundLoad
from rollout.routers.gateway_api import HTTP_ROUTE
from tests.routers.gateway_plane import GatewayPlane
from tests.routers.kube_bench import FOREIGN_ANNOTATIONS, FOREIGN_LABELS, Objects
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    FAST_POLICY,
    ControllerThread,
    condition,
    create,
    decided,
    events,
    install_crd,
    reasons,
    status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RPS = 40.0
NAMESPACE = "default"
BACKENDS = {"model-v1": BASELINE_VERSION, "model-v2": CANDIDATE_VERSION}
ROUTE: dict[str, Any] = {
    "metadata": {
        "name": "fraud",
        "namespace": NAMESPACE,
        "labels": FOREIGN_LABELS,
        "annotations": FOREIGN_ANNOTATIONS,
    },
    "spec": {
        "parentRefs": [{"name": "inference-gateway"}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                "backendRefs": [
                    {"name": "model-v1", "port": 8000, "weight": 100},
                    {"name": "model-v2", "port": 8000, "weight": 0},
                ],
            }
        ],
    },
}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        server.serve_kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
        install_crd(server.api_client())
        yield server


def rollout_document(stack: DemoStack, policy: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = stack.spec_document(name="fraud")
    document["metadata"] = {"name": "fraud", "namespace": NAMESPACE}
    document["spec"]["router"] = {
        "kind": "gateway-api",
        "httpRoute": "fraud",
        "baselineBackend": "model-v1",
        "candidateBackend": "model-v2",
    }
    document["spec"]["policy"] = policy
    return document


class RoutedStack:
    """The demo's servers and Prometheus, with the load sent through the gateway plane."""

    def __init__(self, workdir: Path, scenario: str, api: FakeApiServer) -> None:
        slower = 4.0 if scenario == "latency" else None  # large on a busy machine too
        self.stack = DemoStack(workdir, scenario, RPS, seed=7, candidate_latency_factor=slower)
        self.api = api
        self.plane: GatewayPlane | None = None
        self.load: BackgroundLoad | None = None

    def __enter__(self) -> RoutedStack:
        stack = self.stack.start()
        try:
            assert stack.load is not None
            stack.load.stop()  # the demo's own load goes through HAProxy: not this route's
            Objects(self.api, NAMESPACE).create(HTTP_ROUTE, copy.deepcopy(ROUTE))
            addresses = {name: stack.addresses[version] for name, version in BACKENDS.items()}
            self.plane = GatewayPlane(self.api.url, NAMESPACE, "fraud", addresses).start()
            self.load = BackgroundLoad(f"{self.plane.url}/predict", RPS, 900.0, seed=7).start()
            wait_for("both versions' metrics", self._scraped, timeout=60)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _scraped(self) -> bool:
        assert self.load is not None
        return self.load.snapshot().by_version.get(BASELINE_VERSION, 0) > 100

    def __exit__(self, *exc: object) -> None:
        if self.load is not None:
            self.load.stop(timeout=15)
        if self.plane is not None:
            self.plane.stop()
        self.stack.stop()


def splits(plane: GatewayPlane) -> list[tuple[int, int]]:
    return [(dict(w)["model-v1"], dict(w)["model-v2"]) for w in plane.history]


@pytest.mark.parametrize(
    ("scenario", "phase", "steps"),
    [
        ("healthy", "Promoted", [(100, 0), (80, 20), (50, 50), (0, 100)]),
        ("latency", "RolledBack", [(100, 0), (80, 20), (100, 0)]),
    ],
)
def test_the_controller_drives_the_httproute_through_the_steps_to_the_datas_decision(
    tmp_path: Path, api: FakeApiServer, scenario: str, phase: str, steps: list[tuple[int, int]]
) -> None:
    client = api.api_client()
    with RoutedStack(tmp_path / "stack", scenario, api) as routed:
        assert routed.plane is not None
        create(client, rollout_document(routed.stack, FAST_POLICY))
        with ControllerThread(client):
            found = decided(client, "fraud")
        route = Objects(api, NAMESPACE).get(HTTP_ROUTE, "fraud")
        served = routed.plane.served
        history = splits(routed.plane)
    assert found["phase"] == phase, found.get("message")
    assert found["weightsConfirmed"] is True
    assert history == steps  # the route went through every step, and only those
    final = route["spec"]["rules"][0]["backendRefs"]
    assert [ref["weight"] for ref in final] == list(steps[-1])
    assert route["metadata"]["labels"] == FOREIGN_LABELS  # other writers' fields are kept
    assert route["metadata"]["annotations"] == FOREIGN_ANNOTATIONS
    assert [ref["port"] for ref in final] == [8000, 8000]
    assert served["model-v2"] > 0  # the candidate got real traffic through the route
    if phase == "RolledBack":
        assert found["analysis"]["decidedBy"] == "latency_p95"
    assert condition(found, "RouterAvailable")["status"] == "True"
    seen = reasons(client, "fraud")
    assert seen.count("Step") == len(steps) - 2
    assert phase in seen


def test_weights_someone_else_changes_are_an_event_and_a_condition_then_the_outage_rule(
    tmp_path: Path, api: FakeApiServer
) -> None:
    """A person edits the route mid-rollout: the controller does not take the new weights
    as its own; it says so (Event, RouterAvailable=False naming the field) and, the change
    standing past the policy's outage limit, rolls back (which does move the traffic)."""
    client = api.api_client()
    policy = {
        **FAST_POLICY,
        "steps": [{"weight": 20, "hold": "5m"}],
        "outage": {"maxDuration": "8s"},
    }
    with RoutedStack(tmp_path / "stack", "healthy", api) as routed:
        create(client, rollout_document(routed.stack, policy))
        with ControllerThread(client):
            wait_for(
                "step 1 confirmed",
                lambda: (
                    status(client, "fraud").get("weightsConfirmed")
                    and status(client, "fraud").get("weights") == "80/20"
                ),
            )
            rules = Objects(api, NAMESPACE).get(HTTP_ROUTE, "fraud")["spec"]["rules"]
            rules[0]["backendRefs"][1]["weight"] = 60
            Objects(api, NAMESPACE).merge_patch(HTTP_ROUTE, "fraud", {"spec": {"rules": rules}})
            refused = wait_for(
                "the RouterAvailable condition",
                lambda: _router_down(status(client, "fraud")),
            )
            found = decided(client, "fraud")
        route = Objects(api, NAMESPACE).get(HTTP_ROUTE, "fraud")
    message = refused["message"]
    assert "HTTPRoute default/fraud: spec.rules[0].backendRefs[1].weight is 60" in message
    assert "this rollout set 20: someone else changed the weights" in message
    warnings = [e for e in events(client, "fraud") if e["reason"] == "RouterError"]
    assert warnings and "backendRefs[1].weight is 60" in warnings[0]["message"]
    assert warnings[0]["type"] == "Warning"
    assert found["phase"] == "RolledBack"
    assert "the router failing" in found["reason"]
    assert [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]] == [100, 0]


def _router_down(found: dict[str, Any]) -> dict[str, Any] | None:
    conditions = {c["type"]: c for c in found.get("conditions", [])}
    router = conditions.get("RouterAvailable")
    return router if router is not None and router["status"] == "False" else None
