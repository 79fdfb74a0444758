"""The controller under bad input and faults: a 409 storm, a spec the schema admits but the
validation refuses (and then fixed), a deleted ModelRollout, a new candidate mid-rollout,
an unreachable Prometheus, API errors, an expired watch. One real stack (model servers,
HAProxy, Prometheus) for the module; a fresh fake API server and controller per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from rollout.demo.launcher import DemoStack
from rollout.k8s.api import FINALIZER, RolloutApi
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.routers.haproxy import HAProxyRouter
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    FAST_POLICY,
    ControllerThread,
    condition,
    create,
    decided,
    events,
    get,
    install_crd,
    reasons,
    rollout_document,
    status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
W20 = Weights.candidate_share(20)
LONG_FIRST_STEP: dict[str, Any] = {
    **FAST_POLICY,
    "steps": [{"weight": 20, "hold": "60s"}, {"weight": 50, "hold": "6s"}],
}


@pytest.fixture(scope="module")
def stack_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    slow = DemoStack(
        tmp_path_factory.mktemp("stack"), "latency", 40.0, seed=11, candidate_latency_factor=4.0
    )
    with slow.start(load_seconds=3600.0) as running:
        yield running


@pytest.fixture
def stack(stack_once: DemoStack) -> DemoStack:
    router(stack_once).set_weights(ALL_BASELINE)
    return stack_once


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        install_crd(server.api_client())
        yield server


def router(stack: DemoStack) -> HAProxyRouter:
    assert stack.haproxy is not None
    return HAProxyRouter(stack.haproxy.router_config())


def merge(api_client: client.ApiClient, patch: dict[str, Any], name: str = "fraud") -> None:
    RolloutApi(api_client).merge_patch("default", name, patch)


def at_step_one(api_client: client.ApiClient) -> dict[str, Any] | None:
    found = status(api_client, "fraud")
    return found if found.get("step") == 1 and found.get("weightsConfirmed") else None


def test_a_409_storm_does_not_lose_the_decision(api: FakeApiServer, stack: DemoStack) -> None:
    api_client = api.api_client()
    create(api_client, rollout_document(stack, "fraud"))
    with ControllerThread(api_client):
        wait_for("step 1 confirmed", lambda: at_step_one(api_client))
        # Every status write conflicts for a while, as if others kept writing the resource.
        api.fail_next("PUT", r"/modelrollouts/fraud/status$", 409, times=15)
        found = decided(api_client, "fraud")
    conflicts = [r for r in api.requests if r.path.endswith("/fraud/status") and r.status == 409]
    assert len(conflicts) == 15
    assert found["phase"] == "RolledBack", found.get("reason")
    assert found["decision"] == "rolled_back"
    assert router(stack).get_weights() == ALL_BASELINE
    assert reasons(api_client, "fraud").count("RolledBack") == 1


def test_concurrent_writers_conflict_with_the_controller_and_it_still_decides(
    api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    create(api_client, rollout_document(stack, "fraud"))
    with ControllerThread(api_client):
        wait_for("step 1 confirmed", lambda: at_step_one(api_client))
        for i in range(60):  # a label written again and again: a new resourceVersion each time
            merge(api_client, {"metadata": {"labels": {"touched": str(i)}}})
        found = decided(api_client, "fraud")
    assert found["phase"] == "RolledBack", found.get("reason")
    assert router(stack).get_weights() == ALL_BASELINE


def test_a_refused_spec_gets_invalid_spec_with_every_field_path_and_moves_no_traffic(
    api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    bad_policy = {
        **FAST_POLICY,
        "steps": [{"weight": 50, "hold": "6s"}, {"weight": 20, "hold": "6s"}],
        "alpha": 5,
    }
    document = rollout_document(stack, "fraud", bad_policy)
    document["spec"]["prometheus"]["timeout"] = "soon"  # int-or-string admits it; we do not
    create(api_client, document)
    with ControllerThread(api_client):
        found = wait_for(
            "InvalidSpec", lambda: (s := status(api_client, "fraud")).get("conditions") and s
        )
        invalid = condition(found, "InvalidSpec")
        assert found["phase"] == "InvalidSpec"
        assert invalid["status"] == "True"
        problems = invalid["message"].splitlines()  # one problem a line
        assert [p.split(": ")[0] for p in problems] == [
            "spec.prometheus.timeout",
            "spec.policy.steps",
            "spec.policy.alpha",
        ], problems
        assert "step weights must increase" in invalid["message"]
        assert "InvalidSpec" in reasons(api_client, "fraud")
        assert router(stack).get_weights() == ALL_BASELINE  # no traffic moved

        # An unknown policy name is refused the same way.
        merge(api_client, {"spec": {"policy": "no-such-policy", "prometheus": {"timeout": "5s"}}})
        found = wait_for(
            "the unknown policy refused",
            lambda: (
                "no policy named"
                in condition(s := status(api_client, "fraud"), "InvalidSpec")["message"]
                and s
            ),
        )
        assert condition(found, "InvalidSpec")["message"].startswith("spec.policy: ")
        assert router(stack).get_weights() == ALL_BASELINE

        merge(api_client, {"spec": {"policy": FAST_POLICY}})  # fixed: it starts
        found = wait_for("the fixed spec to start", lambda: at_step_one(api_client))
    assert condition(found, "InvalidSpec")["status"] == "False"
    assert found["observedGeneration"] == get(api_client, "fraud")["metadata"]["generation"]
    assert router(stack).get_weights() == W20


def test_a_spec_broken_mid_rollout_holds_traffic_and_its_fix_resumes_the_same_step(
    api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    create(api_client, rollout_document(stack, "fraud", LONG_FIRST_STEP))
    with ControllerThread(api_client):
        wait_for("step 1 confirmed", lambda: at_step_one(api_client))
        merge(api_client, {"spec": {"policy": {"alpha": 5}}})
        wait_for("InvalidSpec", lambda: status(api_client, "fraud")["phase"] == "InvalidSpec")
        assert router(stack).get_weights() == W20  # held where it was
        merge(api_client, {"spec": {"policy": {"alpha": None}}})  # back as it was
        found = wait_for(
            "resumed",
            lambda: (s := status(api_client, "fraud"))["phase"] == "Progressing" and s,
        )
        assert found["step"] == 1 and found["weights"] == "80/20"
        found = decided(api_client, "fraud")
    assert found["phase"] == "RolledBack"
    assert reasons(api_client, "fraud").count("Step") == 1  # step 1 once: resumed, not restarted


def test_deleting_a_rollout_leaves_traffic_where_it_is_and_says_so(
    api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    create(api_client, rollout_document(stack, "fraud", LONG_FIRST_STEP))
    with ControllerThread(api_client):
        wait_for("step 1 confirmed", lambda: at_step_one(api_client))
        assert FINALIZER in get(api_client, "fraud")["metadata"]["finalizers"]
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            "rollout.mlops.dev", "v1alpha1", "default", "modelrollouts", "fraud"
        )
        wait_for("the finalizer to let it go", lambda: not _exists(api_client))
    assert router(stack).get_weights() == W20  # left where it was
    (deleted,) = [e for e in events(api_client, "fraud") if e["reason"] == "Deleted"]
    assert "traffic is left where it is, weights 80/20" in deleted["message"]


def _exists(api_client: client.ApiClient) -> bool:
    try:
        get(api_client, "fraud")
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_a_new_candidate_mid_rollout_starts_a_new_analysis_from_the_baseline_weights(
    api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    create(api_client, rollout_document(stack, "fraud", LONG_FIRST_STEP))
    with ControllerThread(api_client):
        before = wait_for("a look at step 1", lambda: _looked(api_client))
        merge(api_client, {"spec": {"candidate": {"version": "v3"}}})
        found = wait_for(
            "the new candidate",
            lambda: (s := status(api_client, "fraud")).get("candidate") == "v3" and s,
        )
    assert found["step"] == 1 and found["weights"] == "80/20"
    assert found.get("analysis", {}).get("looks", 0) < before["analysis"]["looks"] or (
        "analysis" not in found
    )
    (notice,) = [e for e in events(api_client, "fraud") if e["reason"] == "NewAnalysis"]
    assert "candidate v2 -> v3" in notice["message"]


def _looked(api_client: client.ApiClient) -> dict[str, Any] | None:
    found = status(api_client, "fraud")
    return found if found.get("analysis", {}).get("looks", 0) >= 2 else None


def test_an_unreachable_prometheus_is_a_condition_and_a_retry_never_a_start(
    tmp_path: Path, api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    document = rollout_document(stack, "fraud")
    good_url = document["spec"]["prometheus"]["url"]
    document["spec"]["prometheus"] = {"url": "http://127.0.0.1:9", "timeout": "1s"}
    create(api_client, document)
    with ControllerThread(api_client) as controller:
        found = wait_for(
            "the error condition",
            lambda: (
                (s := status(api_client, "fraud")).get("conditions")
                and condition(s, "ReconcileError")["status"] == "True"
                and s
            ),
        )
        assert "no traffic was moved" in condition(found, "ReconcileError")["message"]
        assert found["phase"] == "Pending"
        assert router(stack).get_weights() == ALL_BASELINE
        merge(api_client, {"spec": {"prometheus": {"url": good_url}}})
        found = wait_for("the start", lambda: at_step_one(api_client))
        assert controller.alive() == ""
    assert condition(found, "ReconcileError")["status"] == "False"


def test_api_errors_are_retried_and_an_expired_watch_relists(
    api: FakeApiServer, stack: DemoStack
) -> None:
    api_client = api.api_client()
    with ControllerThread(api_client, watch_seconds=1) as controller:
        wait_for("the first list", controller.synced.is_set)
        # The next watch is told 410 Gone (relist), then the API fails twice.
        api.fail_next("GET", r"/modelrollouts$", 410, times=1)
        api.fail_next("GET", r"/modelrollouts$", 500, times=2)
        api.fail_next("GET", r"/modelrollouts/fraud$", 503, times=3)
        create(api_client, rollout_document(stack, "fraud"))
        found = decided(api_client, "fraud")
        assert controller.alive() == ""
    assert found["phase"] == "RolledBack"
    answered = [r.status for r in api.requests]
    assert (answered.count(410), answered.count(500), answered.count(503)) == (1, 2, 3)
