"""A ModelRollout resource read from the API, judged without I/O: its spec accepted (with its
policy) or refused (every problem with its field path), the request a verb left on it, and
whether that request can be carried out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from rollout.k8s.api import API_VERSION, REQUEST_ANNOTATION
from rollout.k8s.crd import KIND
from rollout.spec import (
    FieldProblem,
    Policy,
    RolloutSpec,
    SpecError,
    check_router,
    load_policy,
    spec_from_data,
)
from rollout.state import Phase, RolloutState

Action = Literal["promote", "abort", "retry"]
ACTIONS: Final = ("promote", "abort", "retry")


@dataclass(frozen=True)
class Accepted:
    spec: RolloutSpec
    policy: Policy
    generation: int


@dataclass(frozen=True)
class Refused:
    problems: tuple[FieldProblem, ...]
    generation: int

    @property
    def text(self) -> str:
        return "\n".join(f"{p.path}: {p.message}" for p in self.problems)


def generation_of(obj: Mapping[str, Any]) -> int:
    return int(obj["metadata"].get("generation") or 0)


def validate(obj: Mapping[str, Any]) -> Accepted | Refused:
    """The resource's spec as `rollout run` would read it, and its policy; in the cluster a
    policy is a packaged name or inline (a file path names no file the controller has)."""
    meta = obj["metadata"]
    generation = generation_of(obj)
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": obj.get("spec"),
    }
    source = f"ModelRollout {meta['namespace']}/{meta['name']}"
    try:
        spec = spec_from_data(document, source)
    except SpecError as exc:
        inline = isinstance((obj.get("spec") or {}).get("policy"), Mapping)
        return Refused(_policy_branch(exc.problems, inline), generation)
    policy = spec.spec.policy
    if isinstance(policy, Policy):
        return _routable(Accepted(spec, policy, generation), source)
    if "/" in policy or Path(policy).suffix in (".yaml", ".yml"):
        message = (
            f"{policy!r} is a file path, which the controller cannot read in the cluster: "
            "name a packaged policy (e.g. default) or write the policy inline"
        )
        return Refused((FieldProblem(path="spec.policy", message=message),), generation)
    try:
        return _routable(Accepted(spec, load_policy(policy), generation), source)
    except SpecError as exc:
        problems = tuple(
            FieldProblem(path=f"spec.policy ({policy})", message=f"{p.path}: {p.message}")
            if p.path != "policy"
            else FieldProblem(path="spec.policy", message=p.message)
            for p in exc.problems
        )
        return Refused(problems, generation)


def _routable(accepted: Accepted, source: str) -> Accepted | Refused:
    """Refused when the router cannot carry out the policy's steps, as `rollout run` says."""
    try:
        check_router(accepted.spec, accepted.policy, source)
    except SpecError as exc:
        return Refused(tuple(exc.problems), accepted.generation)
    return accepted


# `policy` is a name or an inline policy: pydantic reports both branches of the union, under
# its tags (`spec.policy.str`, `spec.policy.function-after[..., Policy].steps`).
_BRANCH_TAG = re.compile(r"\.function-after\[[^\]]*\]|\.Policy(?=\.|$)")


def _policy_branch(problems: list[FieldProblem], inline: bool) -> tuple[FieldProblem, ...]:
    """Only the problems of the branch the user wrote, under plain field paths."""
    kept = []
    for problem in problems:
        path = problem.path
        if path.startswith("spec.policy"):
            is_name = path == "spec.policy.str"
            if is_name == inline:
                continue
            path = "spec.policy" if is_name else _BRANCH_TAG.sub("", path)
        kept.append(FieldProblem(path=path, message=problem.message))
    return tuple(kept)


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """What `rollout promote/abort/retry NAME` asks of the controller (an annotation)."""

    id: str
    action: Action
    reason: str
    full: bool = False

    def annotation(self) -> str:
        return json.dumps(
            {"id": self.id, "action": self.action, "reason": self.reason, "full": self.full},
            separators=(",", ":"),
        )


def request_of(obj: Mapping[str, Any]) -> Request | None:
    """The request annotation, None when there is none or it cannot be read."""
    annotations = obj["metadata"].get("annotations") or {}
    text = annotations.get(REQUEST_ANNOTATION)
    if not text:
        return None
    try:
        data = json.loads(text)
        action = data["action"]
        if action not in ACTIONS or not isinstance(data["id"], str) or not data["id"]:
            return None
        return Request(data["id"], action, str(data.get("reason") or ""), bool(data.get("full")))
    except (ValueError, KeyError, TypeError):
        return None


def answered_request(obj: Mapping[str, Any]) -> str | None:
    """The id of the request the status answered."""
    request = (obj.get("status") or {}).get("request") or {}
    found = request.get("id")
    return found if isinstance(found, str) else None


def refusal(action: Action, state: RolloutState | None) -> str | None:
    """Why the request cannot be carried out now; None when it can."""
    if state is None or state.phase is Phase.PENDING:
        return "it has not started: the controller starts it first"
    phase = state.phase
    decided = phase.value
    if action == "promote":
        if phase is Phase.PROMOTED:
            return f"it was already promoted: all traffic is on {state.target.candidate}"
        if phase in (Phase.ROLLED_BACK, Phase.ABORTED):
            return f"it was {decided} ({state.reason}): `rollout retry` starts it again"
        return None
    if action == "abort":
        if phase is Phase.PROMOTED:
            return (
                f"it was already promoted: all traffic is on {state.target.candidate}; to go "
                "back, roll the baseline out as a candidate"
            )
        if phase in (Phase.ROLLED_BACK, Phase.ABORTED) and state.confirmed:
            return f"it was already {decided}: all traffic is on {state.target.baseline}"
        return None
    if phase not in (Phase.ROLLED_BACK, Phase.PAUSED, Phase.ABORTED):
        what = "promoted" if phase is Phase.PROMOTED else "still progressing"
        return f"it is {what}: nothing to retry"
    return None
