"""`rollout controller` processes: killed mid-rollout and started again, it resumes the same
step; two at once, only the Lease holder writes and the other takes over when it dies;
SIGTERM stops one cleanly and hands the Lease over. Real Prometheus, HAProxy and model
servers; the fake API server is the only fake."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from rollout.demo.launcher import DemoStack
from rollout.k8s.crd import GROUP, PLURAL, VERSION
from rollout.routers.base import ALL_CANDIDATE, Weights
from rollout.routers.haproxy import HAProxyRouter
from tests.support.fake_kube import FakeApiServer
from tests.support.k8s_bench import (
    FAST_POLICY,
    controller_process,
    create,
    decided,
    install_crd,
    reasons,
    rollout_document,
    status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The second step holds long enough that a kill at its start lands inside it.
TWO_STEPS: dict[str, Any] = {
    **FAST_POLICY,
    "steps": [{"weight": 20, "hold": "6s"}, {"weight": 50, "hold": "30s"}],
}
LEASE = ["--lease-duration", "4", "--renew-deadline", "2.5", "--retry-period", "0.5"]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        install_crd(server.api_client())
        yield server


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DemoStack]:
    with DemoStack(tmp_path / "stack", "healthy", 40.0, seed=7).start() as running:
        yield running


class StatusLog:
    """Every version of one ModelRollout's status, in order, from a watch."""

    def __init__(self, api_client: client.ApiClient, name: str) -> None:
        self.versions: list[dict[str, Any]] = []
        self._watch = watch.Watch()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(api_client, name), daemon=True)

    def _run(self, api_client: client.ApiClient, name: str) -> None:
        custom = client.CustomObjectsApi(api_client)
        version = "0"
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                    custom.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL,
                    resource_version=version, timeout_seconds=20,
                ):  # fmt: skip
                    obj = event["raw_object"]
                    version = obj["metadata"]["resourceVersion"]
                    if obj["metadata"]["name"] == name and obj.get("status"):
                        self.versions.append(obj["status"])
            except Exception:  # the stream ended under us: watch again from where it was
                continue

    def __enter__(self) -> StatusLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._watch.stop()
        self._thread.join(timeout=30)


def router(stack: DemoStack) -> HAProxyRouter:
    assert stack.haproxy is not None
    return HAProxyRouter(stack.haproxy.router_config())


def at_step_two(api_client: client.ApiClient) -> dict[str, Any] | None:
    found = status(api_client, "fraud")
    return found if found.get("step") == 2 and found.get("weightsConfirmed") else None


def test_a_controller_killed_mid_rollout_is_resumed_at_the_same_step_by_the_next(
    tmp_path: Path, api: FakeApiServer, stack: DemoStack
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = api.api_client()
    create(api_client, rollout_document(stack, "fraud", TWO_STEPS))
    with controller_process(kubeconfig, tmp_path / "first.log", "--no-leader-elect") as first:
        # Killed once step 2 is confirmed and announced (an Event follows its status write).
        wait_for(
            "step 2 confirmed and announced",
            lambda: at_step_two(api_client) and reasons(api_client, "fraud").count("Step") == 2,
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    at_kill = status(api_client, "fraud")
    assert at_kill["phase"] == "Progressing" and at_kill["step"] == 2
    assert router(stack).get_weights() == Weights.candidate_share(50)

    with (
        StatusLog(api_client, "fraud") as log,
        controller_process(kubeconfig, tmp_path / "second.log", "--no-leader-elect"),
    ):
        found = decided(api_client, "fraud")
    assert found["phase"] == "Promoted", found.get("message")
    assert router(stack).get_weights() == ALL_CANDIDATE
    # Never backwards: every status the second controller wrote is at step 2 or promoted.
    progressing = [v for v in log.versions if v["phase"] == "Progressing"]
    assert progressing and all(v["step"] == 2 and v["weights"] == "50/50" for v in progressing)
    seen = reasons(api_client, "fraud")
    assert seen.count("Step") == 2  # step 1 and step 2, each once: no step repeated
    assert "Resumed" in seen
    assert "resumed at step 2 with weights 50/50" in found["state"]


def lease_holder(api_client: client.ApiClient) -> str:
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
        "rollout-controller", "default"
    )
    return (lease.spec.holder_identity if lease.spec else None) or ""


def test_only_the_lease_holder_writes_and_the_other_takes_over_when_it_dies(
    tmp_path: Path, api: FakeApiServer, stack: DemoStack
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = api.api_client()
    with (
        StatusLog(api_client, "fraud") as log,
        controller_process(kubeconfig, tmp_path / "a.log", "--identity", "a", *LEASE) as a,
    ):
        wait_for("a to lead", lambda: lease_holder(api_client) == "a")
        with controller_process(kubeconfig, tmp_path / "b.log", "--identity", "b", *LEASE):
            create(api_client, rollout_document(stack, "fraud", TWO_STEPS))
            wait_for("step 2 confirmed", lambda: at_step_two(api_client))
            written_by_a = len(log.versions)
            os.kill(a.pid, signal.SIGKILL)
            a.wait(timeout=30)
            wait_for("b to take the lease", lambda: lease_holder(api_client) == "b", 60)
            found = decided(api_client, "fraud")
    assert found["phase"] == "Promoted", found.get("message")
    writers = [v.get("writer") for v in log.versions]
    assert set(writers[:written_by_a]) == {"a"}  # b wrote nothing while a held the lease
    assert writers[-1] == "b"
    assert writers == sorted(writers)  # a's writes, then b's: never interleaved
    assert router(stack).get_weights() == ALL_CANDIDATE


def test_sigterm_stops_the_leader_cleanly_and_hands_the_lease_over(
    tmp_path: Path, api: FakeApiServer
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = api.api_client()
    slow = ["--lease-duration", "60", "--renew-deadline", "40", "--retry-period", "0.5"]
    with controller_process(kubeconfig, tmp_path / "a.log", "--identity", "a", *slow) as a:
        wait_for("a to lead", lambda: lease_holder(api_client) == "a")
        with controller_process(kubeconfig, tmp_path / "b.log", "--identity", "b", *slow):
            os.kill(a.pid, signal.SIGTERM)
            assert a.wait(timeout=60) == 0
            # Released, not left to expire (60 s): b takes it at its next try.
            wait_for("b to take the lease", lambda: lease_holder(api_client) == "b", 30)
    assert "stopped" in (tmp_path / "a.log").read_text()
