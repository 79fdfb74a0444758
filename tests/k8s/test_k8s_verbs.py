"""`rollout status/list/promote/abort/retry` on ModelRollout resources (--kubeconfig): the
request goes on the resource, the controller carries it out and answers in the status.
A real stack (model servers, HAProxy, Prometheus) behind the controller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rollout.cli import app
from rollout.demo.launcher import DemoStack
from rollout.k8s.api import REQUEST_ANNOTATION, RolloutApi
from rollout.k8s.resource import Request
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights
from rollout.routers.haproxy import HAProxyRouter
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    FAST_POLICY,
    ControllerThread,
    create,
    install_crd,
    reasons,
    rollout_document,
    status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
runner = CliRunner()
LONG_HOLDS: dict[str, Any] = {
    **FAST_POLICY,
    "steps": [{"weight": 20, "hold": "10m"}, {"weight": 50, "hold": "10m"}],
}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        install_crd(server.api_client())
        yield server


def rollout(kubeconfig: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--kubeconfig", str(kubeconfig)])
    return result.exit_code, result.output


def test_the_verbs_ask_the_controller_and_it_answers(tmp_path: Path, api: FakeApiServer) -> None:
    api_client = api.api_client()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    with DemoStack(tmp_path / "stack", "healthy", 40.0, seed=13).start() as stack:
        assert stack.haproxy is not None
        haproxy = HAProxyRouter(stack.haproxy.router_config())
        create(api_client, rollout_document(stack, "fraud", LONG_HOLDS))
        with ControllerThread(api_client):
            wait_for("step 1", lambda: status(api_client, "fraud").get("weightsConfirmed"))

            code, out = rollout(kubeconfig, "status", "fraud", "--timeout", "0.5")
            assert code == 4 and "step: 1/2, weights 80/20" in out, out

            code, out = rollout(kubeconfig, "promote", "fraud", "--reason", "looks fine")
            assert code == 0 and "promote: accepted" in out, out
            wait_for("step 2", lambda: status(api_client, "fraud").get("weights") == "50/50")
            assert haproxy.get_weights() == Weights.candidate_share(50)

            code, out = rollout(kubeconfig, "abort", "fraud")
            assert code == 0, out
            found = wait_for("aborted", lambda: _settled(api_client, "Aborted"))
            assert haproxy.get_weights() == ALL_BASELINE

            code, out = rollout(kubeconfig, "promote", "fraud")
            assert code == 3 and "was Aborted" in out, out  # refused before asking

            code, out = rollout(kubeconfig, "retry", "fraud")
            assert code == 0, out
            wait_for("step 1 again", lambda: status(api_client, "fraud").get("step") == 1)

            code, out = rollout(kubeconfig, "promote", "fraud", "--full")
            assert code == 0, out
            code, out = rollout(kubeconfig, "status", "fraud", "--timeout", "120")
            assert code == 0 and "Promoted (exit 0)" in out, out
            assert haproxy.get_weights() == ALL_CANDIDATE

            # A request the CLI could not check first is refused by the controller itself.
            late = Request("late-1", "abort", "too late")
            patch = {"metadata": {"annotations": {REQUEST_ANNOTATION: late.annotation()}}}
            RolloutApi(api_client).merge_patch("default", "fraud", patch)
            answer = wait_for(
                "the refusal",
                lambda: (
                    (status(api_client, "fraud").get("request") or {}).get("id") == "late-1"
                    and status(api_client, "fraud")["request"]
                ),
            )
    assert answer["accepted"] is False and "already promoted" in answer["message"]
    assert found["decision"] == "aborted"
    assert reasons(api_client, "fraud").count("Requested") == 4
    assert "RequestRefused" in reasons(api_client, "fraud")

    code, out = rollout(kubeconfig, "list")
    assert code == 0 and "fraud" in out and "Promoted" in out, out
    code, out = rollout(kubeconfig, "status", "nope")
    assert code == 3 and "no such rollout" in out, out


def _settled(api_client: Any, phase: str) -> dict[str, Any] | None:
    found = status(api_client, "fraud")
    return found if found.get("phase") == phase and found.get("weightsConfirmed") else None
