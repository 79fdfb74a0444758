"""What a notification says, derived from what the reconciler did (pure: no I/O, no clock).

A notice is due when a step's weights are confirmed by the router's read-back (not when they
are asked for: a router that refuses them is not a step), and when the rollout is decided:
promoted, rolled back, paused or aborted. Each is read off the change between the state
the engine took an event in and the state it returned, so a resumed rollout that was
already decided is not announced again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from rollout.engine import DECISIONS
from rollout.reconcile import Advanced, Outcome, ReportDone, Rollout
from rollout.routers.base import Weights
from rollout.spec import NoticeKind
from rollout.state import Phase, RolloutState


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    rollout: str
    namespace: str
    model: str
    baseline: str
    candidate: str
    phase: str
    step: int  # 1-based; steps + 1 once promoted
    steps: int
    weights: Weights
    confirmed: bool  # the router's read-back shows `weights`
    reason: str
    at: float  # unix seconds
    report: tuple[str, ...] = ()  # the report files, when written in the same tick

    @property
    def id(self) -> str:
        """The same for every retry of one notice: receivers drop duplicates by it."""
        text = f"{self.namespace}/{self.rollout}/{self.kind.value}/{self.step}/{self.at!r}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def namespace_of(rollout: Rollout) -> str:
    """The rollout's namespace: its key is `<namespace>-<name>`."""
    suffix = f"-{rollout.name}"
    return rollout.key[: -len(suffix)] if rollout.key.endswith(suffix) else ""


def notice_kind(previous: RolloutState | None, state: RolloutState) -> NoticeKind | None:
    """The notice the change from `previous` to `state` calls for, if any."""
    if previous is None:
        return None
    if state.phase.decided:
        same = previous.phase is state.phase and previous.decided_at == state.decided_at
        return None if same else NoticeKind(DECISIONS[state.phase])
    if state.phase is not Phase.PROGRESSING:
        return None
    changes = state.weight_changes
    if len(changes) <= len(previous.weight_changes):
        return None  # nothing newly confirmed
    # A drift repaired restores the weights already announced: not a new step.
    earlier = changes[-2].weights if len(changes) > 1 else None
    return NoticeKind.STEP if changes[-1].weights != earlier else None


def notices(rollout: Rollout, outcome: Outcome) -> list[Notice]:
    """Every notice `outcome` calls for, in order; a decision carries the report's files
    when they were written in the same tick."""
    report: tuple[str, ...] = ()
    for happening in outcome.happened:
        if isinstance(happening, ReportDone):
            report = tuple(str(p) for p in happening.paths.values())
    found = []
    for happening in outcome.happened:
        if not isinstance(happening, Advanced):
            continue
        kind = notice_kind(happening.previous, happening.state)
        if kind is not None:
            found.append(_notice(rollout, kind, happening.state, outcome.state, report))
    return found


def _notice(
    rollout: Rollout,
    kind: NoticeKind,
    state: RolloutState,
    latest: RolloutState,
    report: tuple[str, ...],
) -> Notice:
    steps = len(rollout.policy.steps)
    decided = kind is not NoticeKind.STEP
    # A decision is announced with where traffic stands at the end of the tick: a rollback
    # is normally confirmed on the baseline by then.
    settled = latest if decided and latest.phase is state.phase else state
    reason = state.reason if decided else state.desired_reason
    return Notice(
        kind=kind,
        rollout=rollout.name,
        namespace=namespace_of(rollout),
        model=state.target.model,
        baseline=state.target.baseline,
        candidate=state.target.candidate,
        phase=state.phase.value,
        step=min(state.step, steps - 1) + 1 if state.phase is not Phase.PROMOTED else steps + 1,
        steps=steps,
        weights=settled.desired,
        confirmed=settled.confirmed,
        reason=reason,
        at=state.decided_at if decided and state.decided_at is not None else state.updated_at,
        report=report if decided else (),
    )
