"""An Alertmanager notification to the controller's webhook holds the rollout it names:
the fake API server (the only fake), real Prometheus, model servers and HAProxy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rollout.alerts import AlertReceiver, WebhookSecret
from rollout.demo.launcher import DemoStack
from rollout.routers.base import Weights
from rollout.routers.haproxy import HAProxyRouter
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    FAST_POLICY,
    ControllerThread,
    create,
    install_crd,
    rollout_document,
    status,
    wait_for,
)
from tests.test_alerts import alert, notification

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SECRET = "alert-webhook-secret-value"
HELD = {**FAST_POLICY, "steps": [{"weight": 20, "hold": "1h"}], "minRequests": 10**9}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        install_crd(server.api_client())
        yield server


def test_a_firing_alert_on_the_candidate_pauses_its_modelrollout_and_another_does_nothing(
    tmp_path: Path, api: FakeApiServer
) -> None:
    client = api.api_client()
    with DemoStack(tmp_path / "stack", "healthy", 20.0, seed=3).start() as stack:
        document = rollout_document(stack, "fraud", HELD)
        create(client, document)
        model = document["spec"]["model"]
        candidate = document["spec"]["candidate"]["version"]
        with (
            ControllerThread(client) as controller,
            AlertReceiver(WebhookSecret(SECRET.encode()), controller.deliver_alert).start() as hook,
        ):
            wait_for("step 1 confirmed", lambda: status(client, "fraud").get("weightsConfirmed"))
            headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}

            def send(*alerts: dict[str, object]) -> httpx.Response:
                body = json.dumps(notification(*alerts)).encode()
                return httpx.post(hook.url, content=body, headers=headers, timeout=30)

            other = send(alert(model="another-model", version=candidate, fingerprint="a1"))
            assert other.status_code == 200 and other.json()["delivered"] == 0
            assert status(client, "fraud")["phase"] == "Progressing"
            fired = send(alert(model=model, version=candidate, fingerprint="b2"))
            assert fired.status_code == 200 and fired.json()["delivered"] == 1

            def paused() -> dict[str, object] | None:
                found = status(client, "fraud")
                return found if found.get("phase") == "Paused" else None

            found = wait_for("paused by the alert", paused)
        assert stack.haproxy is not None
        assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == (
            Weights.candidate_share(20)  # a pause holds the traffic where it is
        )
    assert "HighErrorRateFastBurn" in found["reason"]
    assert SECRET not in json.dumps(found)


def test_a_replica_that_does_not_lead_answers_503_for_alertmanager_to_retry(
    api: FakeApiServer,
) -> None:
    controller = ControllerThread(api.api_client()).controller  # never started: not leading
    with AlertReceiver(WebhookSecret(SECRET.encode()), controller.deliver_alert).start() as hook:
        body = json.dumps(notification(alert(fingerprint="c3"))).encode()
        answer = httpx.post(
            hook.url, content=body, headers={"Authorization": f"Bearer {SECRET}"}, timeout=30
        )
    assert answer.status_code == 503 and "not the leader" in answer.json()["error"]
