"""A Kubernetes router that cannot start a rollout, through the controller and the CLI: a
missing object or a route without both backends is a condition and an Event naming the
object and field (`rollout run`: exit 4), never a silent pass; nothing is written."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rollout.cli import app
from rollout.routers.gateway_api import HTTP_ROUTE
from tests.routers.kube_bench import Objects
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    FAST_POLICY,
    ControllerThread,
    create,
    events,
    install_crd,
    status,
    wait_for,
)

NAMESPACE = "default"
ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollout.mlops.dev/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "fraud", "namespace": NAMESPACE},
    "spec": {
        "model": "fraud-detector",
        "baseline": {"version": "v1"},
        "candidate": {"version": "v2"},
        "router": {
            "kind": "gateway-api",
            "httpRoute": "fraud",
            "baselineBackend": "model-v1",
            "candidateBackend": "model-v2",
        },
        "prometheus": {"url": "http://127.0.0.1:9"},
        "policy": FAST_POLICY,
    },
}
ONE_BACKEND = {
    "metadata": {"name": "fraud"},
    "spec": {"rules": [{"backendRefs": [{"name": "model-v1", "port": 80, "weight": 100}]}]},
}
CASES = [
    (None, "HTTPRoute default/fraud not found (spec.router.httpRoute)"),
    (ONE_BACKEND, "spec.rules[0].backendRefs has no candidate backend 'model-v2'"),
]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        server.serve_kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
        install_crd(server.api_client())
        yield server


def route_reads(api: FakeApiServer) -> list[object]:
    return [r for r in api.requests if r.method == "GET" and r.path.endswith("/httproutes/fraud")]


def _error(found: dict[str, Any]) -> dict[str, Any] | None:
    conditions = {c["type"]: c for c in found.get("conditions", [])}
    error = conditions.get("ReconcileError")
    return error if error is not None and error["status"] == "True" else None


def _invalid(found: dict[str, Any]) -> dict[str, Any] | None:
    conditions = {c["type"]: c for c in found.get("conditions", [])}
    invalid = conditions.get("InvalidSpec")
    return invalid if invalid is not None and invalid["status"] == "True" else None


def test_a_router_object_that_does_not_exist_is_an_invalid_spec_until_it_is_created(
    api: FakeApiServer,
) -> None:
    client = api.api_client()
    create(client, copy.deepcopy(ROLLOUT))
    with ControllerThread(client):
        invalid = wait_for("the InvalidSpec condition", lambda: _invalid(status(client, "fraud")))
        refused = wait_for(
            "the InvalidSpec Event",
            lambda: [e for e in events(client, "fraud") if e["reason"] == "InvalidSpec"],
        )
        assert "spec.router.httpRoute" in invalid["message"] and "not found" in invalid["message"]
        assert refused and "spec.router.httpRoute" in refused[0]["message"]
        assert not [r for r in api.requests if r.method == "PATCH" and "httproutes" in r.path]
        # Created (with one backend only): no longer an invalid spec, the next problem is said.
        Objects(api, NAMESPACE).create(HTTP_ROUTE, copy.deepcopy(ONE_BACKEND))
        error = wait_for("the ReconcileError condition", lambda: _error(status(client, "fraud")))
    assert "no candidate backend" in error["message"]
    assert _invalid(status(client, "fraud")) is None


@pytest.mark.parametrize(("route", "named"), CASES[1:])
def test_the_controller_says_why_it_cannot_start_in_a_condition_and_an_event(
    api: FakeApiServer, route: dict[str, Any] | None, named: str
) -> None:
    client = api.api_client()
    if route is not None:
        Objects(api, NAMESPACE).create(HTTP_ROUTE, copy.deepcopy(route))
    create(client, copy.deepcopy(ROLLOUT))
    with ControllerThread(client):
        error = wait_for("the ReconcileError condition", lambda: _error(status(client, "fraud")))
        wait_for("three tries of the route", lambda: len(route_reads(api)) >= 3, timeout=60)
        warning = [e for e in events(client, "fraud") if e["reason"] == "CannotStart"]
    assert named in error["message"] and "no traffic was moved" in error["message"]
    assert warning[0]["type"] == "Warning" and named in warning[0]["message"]
    assert len(warning) == 1  # tried again with backoff, announced once
    assert not [r for r in api.requests if r.method == "PATCH" and "httproutes" in r.path]


@pytest.mark.parametrize(("route", "named"), CASES)
def test_rollout_run_exits_4_naming_the_object_and_field(
    tmp_path: Path, api: FakeApiServer, route: dict[str, Any] | None, named: str
) -> None:
    if route is not None:
        Objects(api, NAMESPACE).create(HTTP_ROUTE, copy.deepcopy(route))
    spec = tmp_path / "rollout.yaml"
    spec.write_text(yaml.safe_dump(ROLLOUT))
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")

    result = CliRunner().invoke(
        app,
        ["run", str(spec), "--state-dir", str(tmp_path / "state")],
        env={"KUBECONFIG": str(kubeconfig)},
    )

    assert result.exit_code == 4, result.output
    output = " ".join(result.output.split())
    assert "cannot start" in output and named in output and "no traffic was changed" in output
