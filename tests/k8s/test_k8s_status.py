"""The status document (pure), the requests and refusals of a resource, and the Events a
reconcile's happenings call for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rollout.analysis.observation import Target
from rollout.engine import Started, Tick
from rollout.k8s.events import notices
from rollout.k8s.resource import Refused, Request, refusal, request_of, validate
from rollout.k8s.status import Context, build_status, state_of
from rollout.reconcile import Advanced
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.spec import FieldProblem
from rollout.state import Outage, Phase, RolloutState

TARGET = Target("fraud", "v1", "v2")


def progressing(step: int = 0, **changes: Any) -> RolloutState:
    state = RolloutState.new("fraud", TARGET, "d", 1000.0)
    weights = Weights.candidate_share((20, 50)[step])
    return replace(
        state, phase=Phase.PROGRESSING, step=step, desired=weights, confirmed=True, **changes
    )


def test_the_status_keeps_the_state_whole_and_shows_its_summary() -> None:
    state = progressing(1, started_at=1000.0, message="step 2/2: holding")
    status = build_status(state, Context(generation=3, steps=2), None, 2000.0)
    assert state_of(status, "test") == state
    assert (status["phase"], status["step"], status["steps"], status["weights"]) == (
        "Progressing", 2, 2, "50/50",
    )  # fmt: skip
    assert status["observedGeneration"] == 3
    assert status["startedAt"] == "1970-01-01T00:16:40Z"


def test_a_condition_keeps_its_transition_time_until_it_flips() -> None:
    first = build_status(progressing(), Context(generation=1), None, 1000.0)
    outage = Outage(since=1500.0, attempts=2, reason="connection refused", retry_at=1510.0)
    later = build_status(progressing(source_outage=outage), Context(generation=1), first, 1500.0)
    times = {c["type"]: c["lastTransitionTime"] for c in later["conditions"]}
    metrics = next(c for c in later["conditions"] if c["type"] == "MetricsAvailable")
    assert metrics["status"] == "False" and "connection refused" in metrics["message"]
    assert times["MetricsAvailable"] == "1970-01-01T00:25:00Z"  # flipped now
    assert times["Progressing"] == "1970-01-01T00:16:40Z"  # unchanged since the first


def test_a_refused_spec_shows_as_invalid_spec_with_each_problem_a_line() -> None:
    problems = (
        FieldProblem(path="spec.policy.steps", message="step weights must increase"),
        FieldProblem(path="spec.prometheus.url", message="not a URL"),
    )
    status = build_status(progressing(), Context(problems=problems), None, 1000.0)
    invalid = next(c for c in status["conditions"] if c["type"] == "InvalidSpec")
    assert status["phase"] == "InvalidSpec"
    assert invalid["message"].splitlines() == [
        "spec.policy.steps: step weights must increase",
        "spec.prometheus.url: not a URL",
    ]
    assert state_of(status, "test") is not None  # the state is kept for when it is fixed


def resource(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "fraud", "namespace": "ml", "generation": 2}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


SPEC: dict[str, Any] = {
    "model": "fraud",
    "baseline": {"version": "v1"},
    "candidate": {"version": "v2"},
    "router": {
        "kind": "gateway-api",
        "httpRoute": "fraud",
        "baselineBackend": "fraud-v1",
        "candidateBackend": "fraud-v2",
    },
    "prometheus": {"url": "http://prometheus:9090"},
}


def test_a_policy_file_path_is_refused_in_the_cluster_and_a_name_is_loaded() -> None:
    refused = validate(resource({**SPEC, "policy": "./policies/mine.yaml"}))
    assert isinstance(refused, Refused) and refused.problems[0].path == "spec.policy"
    assert "file path" in refused.text
    accepted = validate(resource({**SPEC, "policy": "default"}))
    assert not isinstance(accepted, Refused) and accepted.policy.name == "default"
    assert accepted.generation == 2


def test_requests_are_read_from_the_annotation_and_garbage_is_ignored() -> None:
    asked = Request("r1", "promote", "ok", full=True)
    key = "rollout.mlops.dev/request"
    assert request_of(resource(SPEC, {key: asked.annotation()})) == asked
    assert request_of(resource(SPEC, {key: "{not json"})) is None
    assert request_of(resource(SPEC, {key: '{"id": "x", "action": "delete"}'})) is None


def test_refusals_follow_the_phase() -> None:
    promoted = replace(progressing(), phase=Phase.PROMOTED)
    aborted = replace(progressing(), phase=Phase.ABORTED, desired=ALL_BASELINE)
    assert refusal("promote", progressing()) is None
    assert "already promoted" in (refusal("promote", promoted) or "")
    assert "already promoted" in (refusal("abort", promoted) or "")
    assert "nothing to retry" in (refusal("retry", progressing()) or "")
    assert refusal("retry", aborted) is None
    assert "has not started" in (refusal("abort", None) or "")


def test_events_for_each_step_and_the_decision_once() -> None:
    pending = RolloutState.new("fraud", TARGET, "d", 1000.0)
    step1, step2 = progressing(0), progressing(1)
    rolled = replace(step2, phase=Phase.ROLLED_BACK, desired=ALL_BASELINE, reason="P95 x2")
    happened = [
        Advanced(Started(), pending.desired, step1),
        Advanced(Tick(), step1.desired, step1),  # same step: no new Event
        Advanced(Tick(), step1.desired, step2),
        Advanced(Tick(), step2.desired, rolled),
        Advanced(Tick(), ALL_BASELINE, rolled),
    ]
    found = [(n.type, n.reason) for n in notices(happened, pending)]
    assert found == [("Normal", "Step"), ("Normal", "Step"), ("Warning", "RolledBack")]
    assert "P95 x2" in notices(happened, pending)[-1].message
