"""The rollout phase machine: `advance(state, event, policy, now) -> (state, actions)`.

Pure: no clock (time comes in as `now`), no I/O. The reconciler performs the actions in
order and feeds back what happened as the next event. An action that learns something
(ReadWeights, Observe, Wait, WriteReport) ends its batch; so does a failing SetWeights.
Everything still to do is derived from the state, so a batch cut short by a failure,
a crash or a restart loses nothing: the next event plans it again.

Phases: Pending -> Progressing(step i) -> Promoted, or RolledBack, Paused, Aborted.
A decided rollout first gets its final weights confirmed by the router's read-back,
then collects evidence and writes its report: traffic first, evidence second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from rollout.analysis.judge import judge_next
from rollout.analysis.observation import Observation
from rollout.analysis.verdict import Verdict
from rollout.evidence.report import WeightChange
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights
from rollout.spec import AlertAction, InconclusiveAction, OutageAction, Policy
from rollout.state import Outage, Phase, RolloutState

# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Started:
    """Begin a Pending rollout."""


@dataclass(frozen=True)
class Resumed:
    """The driver loaded this state after a restart."""


@dataclass(frozen=True)
class Tick:
    """A Wait has ended."""


@dataclass(frozen=True)
class WeightsRead:
    """The router's read-back."""

    weights: Weights


@dataclass(frozen=True)
class Looked:
    observation: Observation


@dataclass(frozen=True)
class SourceFailed:
    """A look failed; `since` is when its attempt started (None: now). A hanging source
    fails only after its timeouts and retries: the outage began when the attempt did."""

    reason: str
    since: float | None = None


@dataclass(frozen=True)
class RouterFailed:
    """A router call failed; `since` is when the call started (None: now)."""

    reason: str
    since: float | None = None


@dataclass(frozen=True)
class ReportWritten:
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Abort:
    """A person stops the rollout: traffic goes back to the baseline."""

    reason: str


@dataclass(frozen=True)
class Promote:
    """A person skips the rest of the analysis: `full`, all traffic to the candidate now;
    else the next step now (the last step's next is the promotion)."""

    full: bool
    reason: str


@dataclass(frozen=True)
class Retry:
    """A person starts a rolled-back, paused or aborted rollout again from step 1."""

    reason: str


@dataclass(frozen=True)
class AlertFired:
    """An alert fired on the candidate (Alertmanager, through the alert webhook): the policy's
    `alerts.action` pauses or rolls back a rollout that has not been decided."""

    name: str  # the alertname
    labels: tuple[tuple[str, str], ...]
    starts_at: float  # unix seconds: when it began firing
    fingerprint: str  # Alertmanager's, of the labels
    summary: str = ""  # its `summary` annotation, if any

    @property
    def key(self) -> str:
        """One firing of one alert: the fingerprint is the labels', so an alert that resolves
        and fires again is a new firing (a new start), and a repeat is the same one."""
        return f"{self.fingerprint}@{self.starts_at:.0f}"


Event = (
    Started
    | Resumed
    | Tick
    | WeightsRead
    | Looked
    | SourceFailed
    | RouterFailed
    | ReportWritten
    | Abort
    | Promote
    | Retry
    | AlertFired
)

# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class SetWeights:
    weights: Weights
    reason: str


@dataclass(frozen=True)
class ReadWeights:
    expected: Weights


@dataclass(frozen=True)
class Observe:
    start: float
    end: float


@dataclass(frozen=True)
class Wait:
    until: float
    reason: str


@dataclass(frozen=True)
class CollectEvidence:
    """Exemplars of the candidate's slow and failed requests since the start."""


@dataclass(frozen=True)
class WriteReport:
    decision: str


Action = SetWeights | ReadWeights | Observe | Wait | CollectEvidence | WriteReport
Actions = tuple[Action, ...]

DECISIONS: Final = {
    Phase.PROMOTED: "promoted",
    Phase.ROLLED_BACK: "rolled_back",
    Phase.PAUSED: "paused",
    Phase.ABORTED: "aborted",
}
MAX_BACKOFF: Final = 30.0  # seconds between retries of a failing router or source, at most
MAX_ALERTS_HANDLED: Final = 64  # alert firings remembered: the state stays bounded


def advance(
    state: RolloutState, event: Event, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    """The next state and what to do now; `now` is unix seconds."""
    state = replace(state, updated_at=now)
    if isinstance(event, Abort):
        return _abort(state, event.reason, now)
    if isinstance(event, Promote):
        return _promote(state, event, policy, now)
    if isinstance(event, Retry):
        return _retry(state, event.reason, policy, now)
    if isinstance(event, AlertFired):
        return _alert_fired(state, event, policy, now)
    if state.phase is Phase.PENDING:
        return _start(state, policy, now)
    if isinstance(event, Resumed):
        state = _note(state, now, f"resumed at step {state.step + 1} with weights {state.desired}")
    if state.phase is Phase.PROGRESSING:
        return _progressing(state, event, policy, now)
    return _decided(state, event, policy, now)


# ---------------------------------------------------------------------------- progressing


def _start(state: RolloutState, policy: Policy, now: float) -> tuple[RolloutState, Actions]:
    weights = Weights.candidate_share(policy.steps[0].weight)
    state = replace(
        state,
        phase=Phase.PROGRESSING,
        step=0,
        started_at=now,
        desired=weights,
        desired_reason=_step_reason(0, policy),
        confirmed=False,
        message=f"starting: setting weights {weights}",
    )
    return state, _set(state)


def _progressing(
    state: RolloutState, event: Event, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    if isinstance(event, Tick | Resumed | Started) and state.confirmed:
        return state, (ReadWeights(state.desired),)  # the drift check before each look
    if isinstance(event, WeightsRead):
        state, actions = _weights_read(state, event, policy, now)
        if actions:
            return state, actions
    elif isinstance(event, RouterFailed):
        state = _router_failed(state, event.reason, policy, now, event.since)
        if _expired(state.router_outage, policy, now):
            return _outage_action(state, "the router", state.router_outage, policy, now)
    elif isinstance(event, SourceFailed):
        return _source_failed(state, event.reason, policy, now, event.since)
    elif isinstance(event, Looked):
        return _looked(state, event.observation, policy, now)
    return _next(state, policy, now)


def _next(state: RolloutState, policy: Policy, now: float) -> tuple[RolloutState, Actions]:
    """Apply unconfirmed weights when a retry is due, else look when due, else wait."""
    router = state.router_outage
    if not state.confirmed and (router is None or now >= router.retry_at):
        return state, _set(state)
    look_at = _look_due(state, policy)
    if look_at is not None and now >= look_at:
        assert state.last_look_end is not None
        return state, (Observe(start=state.last_look_end, end=now),)
    candidates = [t for t in (look_at, router.retry_at if router else None) if t is not None]
    until = min(candidates)
    return state, (Wait(until=until, reason=state.message),)


def _look_due(state: RolloutState, policy: Policy) -> float | None:
    if state.last_look_end is None:
        return None  # analysis starts once the first weights are confirmed
    if state.source_outage is not None:
        return state.source_outage.retry_at
    return look_due_after(state.last_look_end, policy.analysis.interval)


def look_due_after(last_look_end: float, interval: float) -> float:
    """The next look ends on the interval's grid of the clock (multiples of `interval`):
    rollouts with one interval look at the same moments, so one process reads them all
    with one query per signal. A look lasts at least half an interval (the first one up
    to one and a half), and one that ended a little after its grid point (the time to
    read and judge it) keeps the next on the grid."""
    return math.ceil((last_look_end + interval / 2) / interval) * interval


def _weights_read(
    state: RolloutState, event: WeightsRead, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    """Confirm, repair drift, or count a router that will not take the weights."""
    if event.weights == state.desired:
        return _confirm(state, now), ()
    if state.confirmed:
        state = _note(state, now, f"drift: router showed {event.weights}, restored {state.desired}")
        state = replace(
            state,
            confirmed=False,
            desired_reason=f"drift repaired (router showed {event.weights})",
            message=f"drift: router shows {event.weights}, restoring {state.desired}",
        )
        return state, _set(state)
    reason = f"router shows {event.weights} after setting {state.desired}"
    state = _router_failed(state, reason, policy, now)
    if state.phase is Phase.PROGRESSING and _expired(state.router_outage, policy, now):
        return _outage_action(state, "the router", state.router_outage, policy, now)
    return state, ()


def _confirm(state: RolloutState, now: float) -> RolloutState:
    if state.confirmed:
        return state
    if state.router_outage is not None:
        state = _outage_over(state, "router", state.router_outage, now)
    change = WeightChange(at=now, weights=state.desired, reason=state.desired_reason)
    state = replace(
        state,
        confirmed=True,
        router_outage=None,
        weight_changes=(*state.weight_changes, change),
    )
    if state.phase is Phase.PROGRESSING:
        state = replace(
            state,
            step_started_at=state.step_started_at if state.step_started_at is not None else now,
            last_look_end=state.last_look_end if state.last_look_end is not None else now,
            message=f"step {state.step + 1}: weights {state.desired} applied",
        )
    return state


def _looked(
    state: RolloutState, observation: Observation, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    outage = state.source_outage
    if outage is not None:
        state = _outage_over(state, "Prometheus", outage, now)
        if state.step_started_at is not None:
            lost = now - outage.since
            state = replace(state, step_outage_seconds=state.step_outage_seconds + lost)
    history = (*state.history, observation)
    analysis, judgement = judge_next(state.analysis, history, policy)
    state = replace(
        state,
        history=(*state.history, numbers_only(observation)),
        analysis=analysis,
        judgement=judgement,
        last_look_end=observation.end,
        source_outage=None,
    )
    if judgement.verdict is Verdict.FAIL:
        return _roll_back(state, f"regression confirmed: {judgement.reason}", now)
    step = policy.steps[state.step]
    label = f"step {state.step + 1}/{len(policy.steps)} ({state.desired})"
    if not state.confirmed or state.step_started_at is None:
        state = replace(state, message=f"{label}: {judgement.verdict}, weights not confirmed")
        return _next(state, policy, now)
    hold_end = state.step_started_at + step.hold + state.step_outage_seconds
    if now < hold_end:
        left = hold_end - now
        state = replace(state, message=f"{label}: {judgement.verdict}, holding {left:.0f}s more")
        return _next(state, policy, now)
    if judgement.ready and _complete(observation):
        return _pass_step(state, policy, now)
    if now >= hold_end + policy.inconclusive_grace:
        reason = (
            f"step {state.step + 1}: hold and grace ended without a pass "
            f"({judgement.verdict}: {judgement.reason})"
        )
        if policy.on_inconclusive is InconclusiveAction.ROLLBACK:
            return _roll_back(state, reason, now)
        return _pause(state, reason, now)
    left = hold_end + policy.inconclusive_grace - now
    state = replace(
        state, message=f"{label}: {judgement.verdict}, waiting for data ({left:.0f}s of grace)"
    )
    return _next(state, policy, now)


def _complete(observation: Observation) -> bool:
    """A step never passes on a look with missing data, whatever the history says."""
    versions = (observation.baseline, observation.candidate)
    return not observation.problems and all(v.requests is not None for v in versions)


def _pass_step(state: RolloutState, policy: Policy, now: float) -> tuple[RolloutState, Actions]:
    following = state.step + 1
    if following == len(policy.steps):
        reason = f"all {len(policy.steps)} steps passed"
        if state.judgement is not None:
            reason += f": {state.judgement.reason}"
        state = replace(
            state,
            phase=Phase.PROMOTED,
            step=following,
            desired=ALL_CANDIDATE,
            desired_reason="promoted",
            confirmed=False,
            decided_at=now,
            reason=reason,
            message=f"promoting: setting weights {ALL_CANDIDATE}",
        )
        return state, _set(state)
    weights = Weights.candidate_share(policy.steps[following].weight)
    state = replace(
        state,
        step=following,
        desired=weights,
        desired_reason=_step_reason(following, policy),
        confirmed=False,
        step_started_at=None,
        step_outage_seconds=0.0,
        message=f"step {state.step + 1} passed: setting weights {weights}",
    )
    return state, _set(state)


def _step_reason(index: int, policy: Policy) -> str:
    return f"step {index + 1}/{len(policy.steps)}: {policy.steps[index].weight}% to the candidate"


# ---------------------------------------------------------------------------- outages


def _source_failed(
    state: RolloutState, reason: str, policy: Policy, now: float, since: float | None = None
) -> tuple[RolloutState, Actions]:
    outage = _outage(state.source_outage, reason, policy, now, since)
    state = replace(state, source_outage=outage)
    if _expired(outage, policy, now):
        return _outage_action(state, "Prometheus", outage, policy, now)
    state = replace(
        state,
        message=(
            f"waiting for Prometheus: {reason} (failing for {now - outage.since:.0f}s, "
            f"attempt {outage.attempts}, next try in {outage.retry_at - now:.0f}s)"
        ),
    )
    return _next(state, policy, now)


def _router_failed(
    state: RolloutState, reason: str, policy: Policy, now: float, since: float | None = None
) -> RolloutState:
    outage = _outage(state.router_outage, reason, policy, now, since)
    return replace(
        state,
        router_outage=outage,
        confirmed=False,
        message=(
            f"waiting for the router: {reason} (failing for {now - outage.since:.0f}s, "
            f"attempt {outage.attempts}, next try in {outage.retry_at - now:.0f}s)"
        ),
    )


def _outage(
    current: Outage | None, reason: str, policy: Policy, now: float, began: float | None = None
) -> Outage:
    """The outage so far: it started when the first failing attempt started (`began`),
    not when that attempt's timeouts and retries ran out."""
    first = min(began, now) if began is not None else now
    since = current.since if current is not None else first
    attempts = current.attempts + 1 if current is not None else 1
    backoff = min(2.0 ** min(attempts - 1, 10), policy.analysis.interval, MAX_BACKOFF)
    # The last try falls on the outage limit, so the policy's action applies on time.
    retry_at = min(now + backoff, since + policy.outage.max_duration)
    if retry_at <= now:
        retry_at = now + backoff
    return Outage(since=since, attempts=attempts, reason=reason, retry_at=retry_at)


def _expired(outage: Outage | None, policy: Policy, now: float) -> bool:
    return outage is not None and now - outage.since >= policy.outage.max_duration


def _outage_action(
    state: RolloutState, what: str, outage: Outage | None, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    assert outage is not None
    reason = (
        f"{what} failing for {now - outage.since:.0f}s, past the policy's limit of "
        f"{policy.outage.max_duration:g}s: {outage.reason}"
    )
    if policy.outage.action is OutageAction.ROLLBACK:
        return _roll_back(state, reason, now)
    return _pause(state, reason, now)


def _outage_over(state: RolloutState, what: str, outage: Outage, now: float) -> RolloutState:
    return _note(
        state,
        outage.since,
        f"{what} failing for {now - outage.since:.0f}s ({outage.attempts} attempts): "
        f"{outage.reason}",
    )


# ---------------------------------------------------------------------------- decided


def _roll_back(state: RolloutState, reason: str, now: float) -> tuple[RolloutState, Actions]:
    return _return_to_baseline(state, Phase.ROLLED_BACK, reason, now)


def _abort(state: RolloutState, reason: str, now: float) -> tuple[RolloutState, Actions]:
    if state.phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED):
        return state, _settle(state, now)  # already decided: an abort changes nothing
    if state.phase is Phase.PENDING:  # no traffic was moved
        state = replace(
            state, phase=Phase.ABORTED, decided_at=now, reason=reason, message="aborted"
        )
        return state, _settle(state, now)
    return _return_to_baseline(state, Phase.ABORTED, reason, now)


def _promote(
    state: RolloutState, event: Promote, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    """Progressing or paused: the next step (or, `full`, the promotion) now, without the
    analysis; anything else is not changed by it (the CLI refuses those first)."""
    if state.phase not in (Phase.PROGRESSING, Phase.PAUSED):
        return state, _settle(state, now) if state.phase.decided else ()
    last = state.step + 1 >= len(policy.steps)
    what = "promoted" if event.full or last else f"moved to step {state.step + 2}"
    state = _note(state, now, f"{what} by hand at step {state.step + 1}: {event.reason}")
    state = replace(
        state,
        phase=Phase.PROGRESSING,
        decided_at=None,
        reason="",
        report_written=False,
        source_outage=None,
    )
    if event.full or last:
        state = replace(state, step=len(policy.steps) - 1)
        state, actions = _pass_step(state, policy, now)
        return replace(state, reason=f"promoted by hand: {event.reason}"), actions
    state, actions = _pass_step(state, policy, now)
    # The new step's analysis starts at its confirmation, as after a pass.
    state = replace(
        state,
        last_look_end=None,
        desired_reason=f"{state.desired_reason} (by hand: {event.reason})",
    )
    return state, _set(state)


def _retry(
    state: RolloutState, reason: str, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    """Rolled back, paused or aborted: from step 1 again, with a fresh analysis. The looks
    so far are dropped (the CLI archives the old state first); notes and weight changes stay."""
    if state.phase not in (Phase.ROLLED_BACK, Phase.PAUSED, Phase.ABORTED):
        return state, _settle(state, now) if state.phase.decided else ()
    previous = DECISIONS[state.phase].replace("_", " ")
    state = _note(state, now, f"retried from step 1 after it was {previous}: {reason}")
    state = replace(
        state,
        phase=Phase.PENDING,
        history=(),
        analysis=None,
        judgement=None,
        source_outage=None,
        router_outage=None,
        decided_at=None,
        reason="",
        report_written=False,
        report_paths=(),
        step_started_at=None,
        step_outage_seconds=0.0,
        last_look_end=None,
    )
    return _start(state, policy, now)


def _alert_fired(
    state: RolloutState, event: AlertFired, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    """Pause or roll back, once per firing. A decided rollout stays decided, except that a
    paused one is rolled back when that is the policy's action; anything else carries on as
    if woken."""
    rollback = policy.alerts.action is AlertAction.ROLLBACK
    acts = state.phase in (Phase.PENDING, Phase.PROGRESSING) or (
        state.phase is Phase.PAUSED and rollback
    )
    if not acts or event.key in state.alerts_handled:
        return advance(state, Tick(), policy, now)
    since = datetime.fromtimestamp(event.starts_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = f"alert {event.name} fired on the candidate {state.target.candidate} (since {since})"
    if event.summary:
        reason += f": {event.summary}"
    labels = ", ".join(f'{k}="{v}"' for k, v in event.labels)
    done = "rolled back" if rollback else "paused"
    state = _note(state, now, f"alert {event.name} {{{labels}}} fired: {done}")
    handled = (*state.alerts_handled, event.key)[-MAX_ALERTS_HANDLED:]
    state = replace(state, alerts_handled=handled)
    return _roll_back(state, reason, now) if rollback else _pause(state, reason, now)


def _return_to_baseline(
    state: RolloutState, phase: Phase, reason: str, now: float
) -> tuple[RolloutState, Actions]:
    """All traffic to the baseline first; evidence and report follow its confirmation."""
    outage = state.router_outage
    state = replace(
        state,
        phase=phase,
        desired=ALL_BASELINE,
        desired_reason=f"{DECISIONS[phase].replace('_', ' ')}: {reason}",
        confirmed=False,
        report_written=False,  # a paused rollout's report is superseded by this decision
        decided_at=now,
        reason=reason,
        # Try the router at once even when it was failing: the rollback must not wait.
        router_outage=replace(outage, retry_at=now) if outage is not None else None,
        message=f"{DECISIONS[phase].replace('_', ' ')}: setting weights {ALL_BASELINE}",
    )
    return state, _set(state)


def _pause(state: RolloutState, reason: str, now: float) -> tuple[RolloutState, Actions]:
    state = replace(
        state,
        phase=Phase.PAUSED,
        decided_at=now,
        reason=reason,
        message=f"paused at weights {state.desired}: {reason}",
    )
    return state, _settle(state, now)


def _decided(
    state: RolloutState, event: Event, policy: Policy, now: float
) -> tuple[RolloutState, Actions]:
    if state.phase is Phase.PAUSED:  # traffic stays as it is: a person decides
        if isinstance(event, ReportWritten):
            state = replace(state, report_written=True, report_paths=event.paths)
        return state, _settle(state, now)
    if isinstance(event, WeightsRead):
        state, actions = _weights_read(state, event, policy, now)
        if actions:
            return state, actions
    elif isinstance(event, RouterFailed):
        state = _router_failed(state, event.reason, policy, now, event.since)
    elif isinstance(event, ReportWritten):
        decision = DECISIONS[state.phase].replace("_", " ")
        state = replace(
            state,
            report_written=True,
            report_paths=event.paths,
            message=f"{decision}, report written",
        )
    return state, _settle(state, now)


def _settle(state: RolloutState, now: float) -> Actions:
    """A decided rollout: final weights confirmed, then evidence and report, then nothing.
    A pause leaves traffic as it is; so does an abort before any traffic moved."""
    moves_traffic = state.phase is not Phase.PAUSED and state.started_at is not None
    if moves_traffic and not state.confirmed:
        router = state.router_outage
        if router is not None and now < router.retry_at:
            return (Wait(until=router.retry_at, reason=state.message),)
        return _set(state)
    if not state.report_written:
        return (CollectEvidence(), WriteReport(DECISIONS[state.phase]))
    return ()


# ---------------------------------------------------------------------------- helpers


def numbers_only(observation: Observation) -> Observation:
    """A look as the state keeps it: its numbers and problems; the PromQL text it ran goes
    to the query log (the report reads it there), so the state stays bounded."""
    return replace(observation, queries=()) if observation.queries else observation


def _set(state: RolloutState) -> Actions:
    return (SetWeights(state.desired, state.desired_reason), ReadWeights(state.desired))


def _note(state: RolloutState, at: float, text: str) -> RolloutState:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return replace(state, notes=(*state.notes, f"{stamp} {text}"))
