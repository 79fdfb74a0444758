"""Invalid spec and policy files, each a mutation of one valid pair, with the field its
error must name: shared by tests/faults and benchmarks/faults.py."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rollout.demo.haproxy import RunningHAProxy
from rollout.demo.procs import free_port
from tests.support.cli_faults import FAST_POLICY


def valid_files(haproxy: RunningHAProxy) -> tuple[dict[str, Any], dict[str, Any]]:
    """A spec and policy that `rollout run` accepts, routing through `haproxy`."""
    spec = {
        "apiVersion": "rollout.mlops.dev/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "bad-input"},
        "spec": {
            "model": "fraud-detector",
            "baseline": {"version": "v1"},
            "candidate": {"version": "v2"},
            "router": haproxy.router_config().model_dump(mode="json", by_alias=True),
            # Nothing listens here: a bad file must be refused before anything is contacted.
            "prometheus": {"url": f"http://127.0.0.1:{free_port()}"},
            "policy": "policy.yaml",
        },
    }
    return spec, copy.deepcopy(FAST_POLICY)


def _step(weight: object, hold: object = "5s") -> dict[str, object]:
    return {"weight": weight, "hold": hold}


Mutation = Callable[[dict[str, Any], dict[str, Any]], Any]


def yaml_bomb() -> str:
    """A billion-laughs document: 9 * 2**20 items once its aliases expand."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]" for i in range(20)]
    return "\n".join(lines) + "\n"


CASES: dict[str, tuple[str, str, Mutation]] = {
    "weight-over-100": ("policy", "steps.0.weight", lambda s, p: p.update(steps=[_step(150)])),
    "weight-negative": ("policy", "steps.0.weight", lambda s, p: p.update(steps=[_step(-10)])),
    "weight-100": ("policy", "steps.0.weight", lambda s, p: p.update(steps=[_step(100)])),
    "not-increasing": ("policy", "steps", lambda s, p: p.update(steps=[_step(50), _step(20)])),
    "negative-hold": ("policy", "steps.0.hold", lambda s, p: p.update(steps=[_step(10, "-5s")])),
    "alpha-0": ("policy", "alpha", lambda s, p: p.update(alpha=0)),
    "alpha-1.5": ("policy", "alpha", lambda s, p: p.update(alpha=1.5)),
    "outage-0": ("policy", "outage.maxDuration", lambda s, p: p.update(outage={"maxDuration": 0})),
    "router-kind": ("spec", "spec.router", lambda s, p: s["spec"]["router"].update(kind="traefik")),
    "version-quotes": (
        "spec",
        "spec.candidate.version",
        lambda s, p: s["spec"]["candidate"].update(version='v2"} or vector(1) #'),
    ),
    "version-braces": (
        "spec",
        "spec.baseline.version",
        lambda s, p: s["spec"]["baseline"].update(version="{v1}"),
    ),
    "version-newline": (
        "spec",
        "spec.candidate.version",
        lambda s, p: s["spec"]["candidate"].update(version="v2\nv3"),
    ),
    "inline-policy": (
        "spec",
        "spec.policy",
        lambda s, p: s["spec"].update(policy={"steps": [_step(100)]}),
    ),
    "no-prometheus": ("spec", "spec.prometheus", lambda s, p: s["spec"].pop("prometheus")),
    "webhook-url": (
        "spec",
        "spec.notifications.webhooks.0.url",
        lambda s, p: s["spec"].update(notifications={"webhooks": [{"url": "hooks.example/x"}]}),
    ),
    "webhook-secret-file": (
        "spec",
        "spec.notifications.webhooks.0.secretFile",
        lambda s, p: s["spec"].update(
            notifications={"webhooks": [{"url": "http://h/x", "secretFile": "/nonexistent/hmac"}]}
        ),
    ),
}
