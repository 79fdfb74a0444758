"""A ModelRollout's `status`: what people read (`kubectl get`, `rollout status`) and the full
`RolloutState` the controller resumes from, both written in one conditional write.

Pure: `build_status(state, context, previous, now)` -> the status document (camelCase JSON).
The models here are the single source of the status part of the CRD's schema (`crd.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rollout.analysis.stats import version_error_rate, version_p95
from rollout.engine import DECISIONS
from rollout.spec import FieldProblem
from rollout.state import Phase, RolloutState, StateError, state_from_json, state_to_json

INVALID_SPEC: Final = "InvalidSpec"  # status.phase while the spec is refused
# Condition types, in the order they are listed.
CONDITION_TYPES: Final = (
    "InvalidSpec",
    "Progressing",
    "MetricsAvailable",
    "RouterAvailable",
    "ReconcileError",
)


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Condition(_Status):
    """A Kubernetes condition; `lastTransitionTime` moves only when `status` changes."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase, for machines")
    message: str = Field("", description="for people")
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = None


class ComparisonStatus(_Status):
    """One metric of the latest judgement with the numbers behind it."""

    metric: str
    verdict: str
    baseline: float | None = None
    candidate: float | None = None
    effect: float | None = None
    effect_name: str = ""
    interval: list[float] | None = Field(None, description="[low, high] of the effect")
    confidence: float | None = None
    p_value: float | None = None
    baseline_n: int = 0
    candidate_n: int = 0


class LookStatus(_Status):
    """The latest look's own numbers (P95 in seconds, error rate as a fraction)."""

    start: str = Field(json_schema_extra={"format": "date-time"})
    end: str = Field(json_schema_extra={"format": "date-time"})
    baseline_requests: int | None = None
    candidate_requests: int | None = None
    baseline_p95: float | None = None
    candidate_p95: float | None = None
    baseline_error_rate: float | None = None
    candidate_error_rate: float | None = None


class AnalysisStatus(_Status):
    looks: int
    verdict: str = Field(description="of the latest look: NO_REGRESSION_YET, FAIL, ...")
    decided_by: str | None = None
    reason: str = ""
    comparisons: list[ComparisonStatus] = Field(default_factory=list)
    latest_look: LookStatus | None = None


class RequestStatus(_Status):
    """The controller's answer to the last `rollout promote/abort/retry` on this resource."""

    id: str
    action: str
    accepted: bool
    message: str = ""


class RolloutStatus(_Status):
    """Written by the controller only."""

    phase: str = Field(
        description="Pending, Progressing, Promoted, RolledBack, Paused, Aborted, or InvalidSpec"
    )
    step: int | None = Field(None, description="the current step, from 1")
    steps: int | None = Field(None, description="how many steps the policy has")
    weights: str | None = Field(None, description="baseline/candidate percent, e.g. 90/10")
    weights_confirmed: bool | None = Field(None, description="the router's read-back shows them")
    baseline: str | None = None
    candidate: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    analysis: AnalysisStatus | None = None
    decision: str | None = Field(None, description="promoted, rolled_back, paused or aborted")
    reason: str | None = Field(None, description="why it was decided")
    message: str | None = Field(None, description="what the rollout is doing now")
    trace_ids: list[str] = Field(
        default_factory=list, description="exemplar trace IDs of the candidate's slow or failed"
    )
    started_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    decided_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    request: RequestStatus | None = None
    state: str | None = Field(
        None, description="the controller's full rollout state (JSON), resumed from on restart"
    )
    writer: str | None = Field(None, description="the controller replica that wrote this status")


# ---------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Context:
    """What the status shows besides the state: from the resource and the controller."""

    generation: int = 0
    steps: int | None = None
    problems: tuple[FieldProblem, ...] = ()  # the spec's, when it is refused
    error: str = ""  # the last reconcile's failure (the API, or the controller itself)
    request: RequestStatus | None = None
    trace_ids: tuple[str, ...] = ()


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _analysis(state: RolloutState) -> AnalysisStatus | None:
    judgement = state.judgement
    if judgement is None:
        return None
    comparisons = [
        ComparisonStatus(
            metric=c.metric,
            verdict=c.verdict.value,
            baseline=_finite(c.baseline),
            candidate=_finite(c.candidate),
            effect=_finite(c.effect),
            effect_name=c.effect_name,
            interval=[v for v in c.interval if math.isfinite(v)] if c.interval else None,
            confidence=_finite(c.confidence),
            p_value=_finite(c.p_value),
            baseline_n=c.baseline_n,
            candidate_n=c.candidate_n,
        )
        for c in judgement.comparisons
    ]
    latest = None
    if state.history:
        look = state.history[-1]
        latest = LookStatus(
            start=stamp(look.start),
            end=stamp(look.end),
            baseline_requests=look.baseline.requests,
            candidate_requests=look.candidate.requests,
            baseline_p95=_finite(version_p95(look.baseline)),
            candidate_p95=_finite(version_p95(look.candidate)),
            baseline_error_rate=_finite(version_error_rate(look.baseline)),
            candidate_error_rate=_finite(version_error_rate(look.candidate)),
        )
    return AnalysisStatus(
        looks=len(state.history),
        verdict=judgement.verdict.value,
        decided_by=judgement.decided_by,
        reason=judgement.reason,
        comparisons=comparisons,
        latest_look=latest,
    )


def _wanted_conditions(
    state: RolloutState | None, context: Context
) -> list[tuple[str, bool, str, str]]:
    """(type, status, reason, message) of every condition, from the state and context."""
    problems = context.problems
    invalid = (
        "InvalidSpec",
        bool(problems),
        "SpecRefused" if problems else "SpecAccepted",
        "\n".join(f"{p.path}: {p.message}" for p in problems),
    )
    wanted = [invalid]
    if state is not None:
        phase = state.phase
        progressing = phase in (Phase.PENDING, Phase.PROGRESSING)
        wanted.append(("Progressing", progressing, phase.value, state.message))
        source, router = state.source_outage, state.router_outage
        wanted.append(
            (
                "MetricsAvailable",
                source is None,
                "Unreachable" if source else "Reachable",
                f"{source.reason} (attempt {source.attempts})" if source else "",
            )
        )
        wanted.append(
            (
                "RouterAvailable",
                router is None,
                "Unreachable" if router else "Reachable",
                f"{router.reason} (attempt {router.attempts})" if router else "",
            )
        )
    wanted.append(
        (
            "ReconcileError",
            bool(context.error),
            "Failed" if context.error else "Succeeded",
            context.error,
        )
    )
    return wanted


def conditions(
    state: RolloutState | None,
    context: Context,
    previous: Sequence[Mapping[str, Any]],
    now: float,
) -> list[Condition]:
    """The conditions, each keeping its previous `lastTransitionTime` unless it flipped."""
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    result = []
    for kind, on, reason, message in _wanted_conditions(state, context):
        value: Literal["True", "False"] = "True" if on else "False"
        old = before.get(kind)
        since = stamp(now)
        if old is not None and old.get("status") == value and old.get("lastTransitionTime"):
            since = str(old["lastTransitionTime"])
        result.append(
            Condition(
                type=kind,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=since,
                observed_generation=context.generation,
            )
        )
    return result


def build_status(
    state: RolloutState | None,
    context: Context,
    previous: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The whole `status` (JSON, camelCase): a summary of `state`, the context's conditions,
    and `state` itself for resuming."""
    old = previous or {}
    phase = state.phase.value if state is not None else Phase.PENDING.value
    if context.problems:
        phase = INVALID_SPEC
    status = RolloutStatus(
        phase=phase,
        observed_generation=context.generation,
        conditions=conditions(state, context, old.get("conditions") or [], now),
        request=context.request,
        trace_ids=list(context.trace_ids),
        steps=context.steps,
    )
    if state is not None:
        decided = state.phase.decided
        status = status.model_copy(
            update={
                "step": min(state.step + 1, context.steps or state.step + 1),
                "weights": str(state.desired),
                "weights_confirmed": state.confirmed,
                "baseline": state.target.baseline,
                "candidate": state.target.candidate,
                "analysis": _analysis(state),
                "decision": DECISIONS.get(state.phase) if decided else None,
                "reason": state.reason or None,
                "message": state.message or None,
                "started_at": stamp(state.started_at) if state.started_at else None,
                "decided_at": stamp(state.decided_at) if state.decided_at else None,
                "state": state_to_json(state),
            }
        )
    if context.problems:
        status = status.model_copy(
            update={"message": f"invalid spec ({len(context.problems)} problem(s)): see conditions"}
        )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def state_of(status: Mapping[str, Any] | None, source: str) -> RolloutState | None:
    """The state a status keeps, None when it keeps none; StateError when unusable."""
    if not status or not status.get("state"):
        return None
    text = status["state"]
    if not isinstance(text, str):
        raise StateError(f"{source}: status.state is not a string")
    return state_from_json(text, f"{source} status.state")
