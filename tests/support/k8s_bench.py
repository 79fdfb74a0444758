"""The controller's bench: the CRD installed in a fake API server, ModelRollouts made from a
real demo stack (model servers, HAProxy, Prometheus), and controllers run in-process (a
thread) or as `rollout controller` processes, stopped by what started them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

from rollout.demo.launcher import DemoStack
from rollout.k8s.api import RolloutApi
from rollout.k8s.controller import Controller, ControllerSettings, run_controller
from rollout.k8s.crd import GROUP, PLURAL, VERSION, crd_document
from rollout.k8s.leader import LeaderElector
from rollout.observe import Observer
from rollout.spec import format_duration

T = TypeVar("T")
# Short holds and a look every 2 s: a healthy rollout takes about 20 s.
FAST_POLICY: dict[str, Any] = {
    "name": "fast",
    "steps": [{"weight": 20, "hold": "6s"}, {"weight": 50, "hold": "6s"}],
    "analysis": {"interval": "2s"},
    "minRequests": 40,
    # The grace ends a step by the clock: a starved CI machine can use it all up before a
    # clear regression is confirmed. The tests assert what the data decides, so it is wide.
    "inconclusiveGrace": "120s",
    "outage": {"maxDuration": "60s"},
}
DECIDED = ("Promoted", "RolledBack", "Paused", "Aborted")


def install_crd(api_client: client.ApiClient) -> None:
    body = client.V1CustomResourceDefinition.from_dict(crd_document())
    assert body is not None
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(body)


def rollout_document(
    stack: DemoStack, name: str, policy: Any = None, namespace: str = "default"
) -> dict[str, Any]:
    """The ModelRollout a user would apply for this stack (inline fast policy by default)."""
    document: dict[str, Any] = stack.spec_document(name=name)
    document["metadata"] = {"name": name, "namespace": namespace}
    router = document["spec"]["router"]
    router["timeout"] = format_duration(router["timeout"])  # the CRD: '5s' or whole seconds
    document["spec"]["policy"] = FAST_POLICY if policy is None else policy
    return document


def create(api_client: client.ApiClient, document: dict[str, Any]) -> dict[str, Any]:
    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, document["metadata"].get("namespace", "default"), PLURAL, document
    )
    assert isinstance(created, dict)
    return created


def get(api_client: client.ApiClient, name: str, namespace: str = "default") -> dict[str, Any]:
    return RolloutApi(api_client).get(namespace, name)


def status(api_client: client.ApiClient, name: str) -> dict[str, Any]:
    found: dict[str, Any] = get(api_client, name).get("status") or {}
    return found


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 180.0, every: float = 0.2
) -> T:
    """Poll until `probe` returns something (bounded: a generous limit, never a timing claim)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except Exception as exc:  # the API may answer 409/500 while faults are injected
            last, found = exc, None
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last error: {last})")


def decided(api_client: client.ApiClient, name: str, timeout: float = 240.0) -> dict[str, Any]:
    """The status once the rollout is decided and its final weights confirmed."""

    def settled() -> dict[str, Any] | None:
        found = status(api_client, name)
        done = found.get("phase") in DECIDED and found.get("weightsConfirmed")
        return found if done or found.get("phase") == "Paused" else None

    return wait_for(f"{name} to be decided", settled, timeout)


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in found.get("conditions", []) if c["type"] == kind)


def events(api_client: client.ApiClient, name: str) -> list[dict[str, Any]]:
    return RolloutApi(api_client).list_events("default", name)


def reasons(api_client: client.ApiClient, name: str) -> list[str]:
    return [e["reason"] for e in events(api_client, name)]


class ControllerThread:
    """A `Controller` in this process, run as `rollout controller` runs it."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        identity: str = "test",
        elector: LeaderElector | None = None,
        workers: int = 2,
        watch_seconds: int = 30,
        observer: Observer | None = None,
    ) -> None:
        self.controller = Controller(
            RolloutApi(api_client),
            ControllerSettings(workers=workers, identity=identity, watch_seconds=watch_seconds),
            fence=elector.fence if elector is not None else _unfenced,
            observer=observer,
        )
        self.elector = elector
        self.thread = threading.Thread(
            target=run_controller, args=(self.controller, elector), daemon=True
        )
        self.failure: BaseException | None = None

    def __enter__(self) -> Controller:
        self.thread.start()
        return self.controller

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.controller.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the controller did not stop within 60 s"


def _unfenced() -> None:
    return None


ROOT = Path(__file__).resolve().parent.parent.parent


@contextlib.contextmanager
def controller_process(kubeconfig: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`rollout controller` as a process of its own; stopped (SIGKILL if need be) by its pid."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rollout.cli", "controller", "--kubeconfig", str(kubeconfig),
             "--health-address", "127.0.0.1:0", *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
