"""The phase machine with plain values: every transition a user relies on."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.analysis.observation import Bucket, Observation, Target, VersionCounts
from rollout.engine import (
    MAX_ALERTS_HANDLED,
    Abort,
    Action,
    AlertFired,
    CollectEvidence,
    Event,
    Looked,
    Observe,
    Promote,
    ReadWeights,
    ReportWritten,
    Resumed,
    Retry,
    RouterFailed,
    SetWeights,
    SourceFailed,
    Started,
    Tick,
    Wait,
    WeightsRead,
    WriteReport,
    advance,
    look_due_after,
)
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights
from rollout.spec import Policy
from rollout.state import Phase, RolloutState, state_from_json, state_to_json

T0 = 1_700_000_000.0
TARGET = Target(model="iris", baseline="2.3.1", candidate="2.4.0")
LES = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, math.inf)
SHAPE = (0.10, 0.45, 0.80, 0.95, 0.99, 1.0, 1.0)  # P95 = 200 ms


def make_policy(**overrides: object) -> Policy:
    data: dict[str, object] = {
        "steps": [{"weight": 20, "hold": 60}, {"weight": 50, "hold": 60}],
        "analysis": {"interval": 10},
        "minRequests": 100,
        "inconclusiveGrace": 30,
        "outage": {"maxDuration": 60},
    }
    data.update(overrides)
    return Policy.model_validate(data)


POLICY = make_policy()
W20 = Weights.candidate_share(20)
W50 = Weights.candidate_share(50)


def counts(requests: int, errors: int) -> VersionCounts:
    buckets = tuple(Bucket(le, round(requests * f)) for le, f in zip(LES, SHAPE, strict=True))
    return VersionCounts(requests=requests, errors=errors, buckets=buckets)


def healthy(start: float, end: float) -> Observation:
    return Observation(start, end, baseline=counts(800, 4), candidate=counts(200, 1))


def failing(start: float, end: float) -> Observation:
    return Observation(start, end, baseline=counts(800, 4), candidate=counts(200, 60))


def sparse(start: float, end: float) -> Observation:
    return Observation(start, end, baseline=counts(40, 0), candidate=counts(10, 0))


def no_candidate(start: float, end: float) -> Observation:
    missing = VersionCounts(requests=None, errors=None, buckets=None)
    return Observation(
        start, end, baseline=counts(800, 4), candidate=missing, problems=("requests: empty",)
    )


def fresh() -> RolloutState:
    return RolloutState.new("iris", TARGET, "digest", T0)


def step(
    state: RolloutState, event: Event, now: float, policy: Policy = POLICY
) -> tuple[RolloutState, tuple[Action, ...]]:
    return advance(state, event, policy, now)


def to_baseline(state: RolloutState) -> tuple[Action, ...]:
    return (SetWeights(ALL_BASELINE, state.desired_reason), ReadWeights(ALL_BASELINE))


def started(now: float = T0) -> RolloutState:
    """A rollout at step 1 whose weights the router has confirmed at `now`."""
    state, _ = step(fresh(), Started(), now)
    state, _ = step(state, WeightsRead(state.desired), now)
    return state


def look(
    state: RolloutState, make: Callable[[float, float], Observation], now: float
) -> tuple[RolloutState, tuple[Action, ...]]:
    """The driver's round at `now`: drift check, then a look since the last one."""
    state, actions = step(state, Tick(), now)
    assert actions == (ReadWeights(state.desired),)
    state, actions = step(state, WeightsRead(state.desired), now)
    assert actions == (Observe(start=state.last_look_end, end=now),)
    return step(state, Looked(make(state.last_look_end, now)), now)


# ---------------------------------------------------------------------------- progress


def test_start_writes_the_first_step_as_intent_then_sets_and_reads_it_back() -> None:
    state, actions = step(fresh(), Started(), T0)
    assert state.phase is Phase.PROGRESSING and state.step == 0
    assert state.desired == W20 and not state.confirmed
    assert actions == (SetWeights(W20, state.desired_reason), ReadWeights(W20))


def test_confirmed_weights_start_the_hold_and_the_analysis_then_wait_for_the_first_look() -> None:
    state, _ = step(fresh(), Started(), T0)
    state, actions = step(state, WeightsRead(W20), T0 + 1)
    assert state.confirmed and state.step_started_at == T0 + 1
    assert state.last_look_end == T0 + 1
    assert [c.weights for c in state.weight_changes] == [W20]
    # The first look ends on the interval's grid (T0 is a multiple of the 10 s interval).
    assert actions == (Wait(until=T0 + 10, reason=state.message),)


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.sampled_from([1.0, 10.0, 15.0, 30.0, 60.0]),
)
def test_looks_end_on_the_interval_grid_and_last_at_least_half_an_interval(
    last_end: float, interval: float
) -> None:
    due = look_due_after(last_end, interval)
    assert due % interval == 0
    assert interval / 2 <= due - last_end <= 1.5 * interval


def test_rollouts_started_apart_look_together_after_their_first_look() -> None:
    """Two rollouts confirmed 3 s apart; each look ends a little late (the time to read it)."""
    ends = []
    for confirmed_at in (T0 + 1, T0 + 4):
        due = look_due_after(confirmed_at, 10)
        looks = []
        for _ in range(4):
            looks.append(due)
            due = look_due_after(due + 0.8, 10)
        ends.append(looks)
    assert ends[0] == ends[1] == [T0 + 10, T0 + 20, T0 + 30, T0 + 40]


def test_a_pass_before_the_hold_ends_keeps_the_step() -> None:
    state = started()
    state, actions = look(state, healthy, T0 + 30)
    assert state.judgement is not None and state.judgement.ready
    assert state.step == 0 and state.desired == W20
    assert actions == (Wait(until=T0 + 40, reason=state.message),)


def test_a_pass_after_the_hold_moves_to_the_next_step() -> None:
    state = started()
    for t in range(10, 70, 10):
        state, actions = look(state, healthy, T0 + t)
    assert state.step == 1 and state.desired == W50 and not state.confirmed
    assert actions == (SetWeights(W50, state.desired_reason), ReadWeights(W50))
    assert len(state.history) == 6
    assert [(o.start, o.end) for o in state.history[:2]] == [(T0, T0 + 10), (T0 + 10, T0 + 20)]


def test_the_next_steps_hold_counts_from_its_confirmation() -> None:
    state = started()
    for t in range(10, 70, 10):
        state, _ = look(state, healthy, T0 + t)
    state, _ = step(state, WeightsRead(W50), T0 + 65)
    assert state.step_started_at == T0 + 65
    state, _ = look(state, healthy, T0 + 120)  # 55 s into a 60 s hold
    assert state.step == 1 and state.phase is Phase.PROGRESSING


def test_after_the_last_step_traffic_goes_to_the_candidate_then_the_report() -> None:
    state = started()
    for t in range(10, 70, 10):
        state, _ = look(state, healthy, T0 + t)
    state, _ = step(state, WeightsRead(W50), T0 + 60)
    for t in range(70, 130, 10):
        state, actions = look(state, healthy, T0 + t)
    assert state.phase is Phase.PROMOTED and state.desired == ALL_CANDIDATE
    assert actions == (SetWeights(ALL_CANDIDATE, "promoted"), ReadWeights(ALL_CANDIDATE))
    state, actions = step(state, WeightsRead(ALL_CANDIDATE), T0 + 121)
    assert actions == (CollectEvidence(), WriteReport("promoted"))
    state, actions = step(state, ReportWritten(), T0 + 122)
    assert state.report_written and actions == ()
    assert [c.weights for c in state.weight_changes] == [W20, W50, ALL_CANDIDATE]


# ---------------------------------------------------------------------------- rollback


def test_fail_rolls_back_with_the_baseline_weights_first_and_the_report_after() -> None:
    state = started()
    state, actions = look(state, failing, T0 + 10)  # during the hold: FAIL does not wait
    assert state.phase is Phase.ROLLED_BACK and state.desired == ALL_BASELINE
    assert state.reason.startswith("regression confirmed")
    assert actions[0] == SetWeights(ALL_BASELINE, state.desired_reason)
    assert actions == (actions[0], ReadWeights(ALL_BASELINE))
    state, actions = step(state, WeightsRead(ALL_BASELINE), T0 + 11)
    assert actions == (CollectEvidence(), WriteReport("rolled_back"))
    state, actions = step(state, ReportWritten(), T0 + 12)
    assert actions == ()


def test_a_rollback_is_retried_until_the_read_back_shows_all_baseline() -> None:
    state = started()
    state, _ = look(state, failing, T0 + 10)
    now = T0 + 10
    waits = []
    for event in (RouterFailed("connection refused"), WeightsRead(W20), RouterFailed("timeout")):
        state, actions = step(state, event, now)
        assert state.phase is Phase.ROLLED_BACK and not state.confirmed
        (wait,) = actions
        assert isinstance(wait, Wait)
        waits.append(wait.until - now)
        now = wait.until
        state, actions = step(state, Tick(), now)
        assert actions == (
            SetWeights(ALL_BASELINE, state.desired_reason),
            ReadWeights(ALL_BASELINE),
        )
    assert waits == sorted(waits) and waits[0] < waits[-1]  # backs off
    state, actions = step(state, WeightsRead(ALL_BASELINE), now)
    assert state.confirmed and actions == (CollectEvidence(), WriteReport("rolled_back"))


def test_inconclusive_after_the_hold_waits_out_the_grace_then_pauses_without_moving_traffic() -> (
    None
):
    state = started()
    for t in range(10, 90, 10):  # hold ends at 60, grace at 90
        state, actions = look(state, sparse, T0 + t)
        assert state.phase is Phase.PROGRESSING and isinstance(actions[0], Wait)
    state, actions = look(state, sparse, T0 + 90)
    assert state.phase is Phase.PAUSED and state.desired == W20
    assert "INCONCLUSIVE" in state.reason
    assert actions == (CollectEvidence(), WriteReport("paused"))
    state, actions = step(state, ReportWritten(), T0 + 91)
    assert actions == ()
    # A person aborts the paused rollout: baseline first, then a new report of the abort.
    state, actions = step(state, Abort("no traffic on v2 today"), T0 + 200)
    assert state.phase is Phase.ABORTED and actions == to_baseline(state)
    state, actions = step(state, WeightsRead(ALL_BASELINE), T0 + 201)
    assert actions == (CollectEvidence(), WriteReport("aborted"))


def test_inconclusive_with_policy_rollback_returns_traffic_to_the_baseline() -> None:
    policy = make_policy(onInconclusive="rollback", inconclusiveGrace=0)
    state = started()
    for t in range(10, 70, 10):
        state, _ = step(state, Tick(), T0 + t, policy)
        state, _ = step(state, WeightsRead(W20), T0 + t, policy)
        state, actions = step(state, Looked(sparse(T0 + t - 10, T0 + t)), T0 + t, policy)
    assert state.phase is Phase.ROLLED_BACK
    assert actions[0] == SetWeights(ALL_BASELINE, state.desired_reason)


def test_a_step_never_passes_on_a_look_without_the_candidates_data() -> None:
    state = started()
    for t in range(10, 60, 10):
        state, _ = look(state, healthy, T0 + t)
    for t in range(60, 90, 10):
        state, _ = look(state, no_candidate, T0 + t)
        assert state.step == 0 and state.phase is Phase.PROGRESSING
    state, actions = look(state, no_candidate, T0 + 90)
    assert state.phase is Phase.PAUSED and state.desired == W20
    assert not any(isinstance(a, SetWeights) for a in actions)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["no_candidate", "sparse", "source_failed", "tick", "router_failed"]),
        min_size=1,
        max_size=30,
    )
)
def test_missing_data_and_failures_never_promote_or_move_a_step(kinds: list[str]) -> None:
    state = started()
    now = T0
    for kind in kinds:
        now += 10
        if kind in ("no_candidate", "sparse"):
            make = no_candidate if kind == "no_candidate" else sparse
            state, _ = step(state, Looked(make(state.last_look_end or now, now)), now)
        elif kind == "source_failed":
            state, _ = step(state, SourceFailed("connection refused"), now)
        elif kind == "router_failed":
            state, _ = step(state, RouterFailed("connection refused"), now)
        else:
            state, _ = step(state, Tick(), now)
        assert state.phase is not Phase.PROMOTED
        assert state.step == 0 and state.desired in (W20, ALL_BASELINE)


# ---------------------------------------------------------------------------- outages, drift


def test_prometheus_failing_holds_the_weights_and_backs_off() -> None:
    state = started()
    now = T0 + 10
    delays = []
    for _ in range(4):
        state, actions = step(state, SourceFailed("connection refused"), now)
        assert state.desired == W20 and state.phase is Phase.PROGRESSING
        assert state.source_outage is not None and state.source_outage.since == T0 + 10
        assert "waiting for Prometheus" in state.message
        (wait,) = actions
        assert isinstance(wait, Wait)
        delays.append(wait.until - now)
        now = wait.until
    assert delays == [1.0, 2.0, 4.0, 8.0]
    state, _ = step(state, Tick(), now)
    state, actions = step(state, WeightsRead(W20), now)
    assert actions == (Observe(start=T0, end=now),)  # the look covers the outage
    state, _ = step(state, Looked(healthy(T0, now)), now)
    assert state.source_outage is None
    assert any("Prometheus failing" in note for note in state.notes)


def test_time_prometheus_was_down_extends_the_steps_hold_and_grace() -> None:
    state = started()  # step 1 confirmed at T0: hold 60 s, grace 30 s
    state, _ = step(state, SourceFailed("connection refused"), T0 + 10)
    state, _ = step(state, Tick(), T0 + 50)
    state, _ = step(state, WeightsRead(W20), T0 + 50)
    state, _ = step(state, Looked(sparse(T0, T0 + 50)), T0 + 50)  # 40 s lost
    assert state.step_outage_seconds == 40
    state, _ = look(state, sparse, T0 + 95)  # past 60 + 30: without the outage, a pause
    assert state.phase is Phase.PROGRESSING and "holding 5s more" in state.message
    state, _ = look(state, sparse, T0 + 120)  # the grace runs to 60 + 40 + 30
    assert state.phase is Phase.PROGRESSING and "waiting for data (10s of grace)" in state.message
    state, actions = look(state, healthy, T0 + 130)
    assert state.step == 1 and state.step_outage_seconds == 0.0
    assert actions == (SetWeights(W50, state.desired_reason), ReadWeights(W50))


def test_prometheus_down_past_the_limit_applies_the_outage_action() -> None:
    state = started()
    now = T0 + 10
    while state.phase is Phase.PROGRESSING:
        state, actions = step(state, SourceFailed("timeout"), now)
        if state.phase is Phase.PROGRESSING:
            assert isinstance(actions[0], Wait)
            now = actions[0].until
    assert now == T0 + 70  # the last try falls on the 60 s limit
    assert state.phase is Phase.ROLLED_BACK and "Prometheus" in state.reason
    assert actions[0] == SetWeights(ALL_BASELINE, state.desired_reason)


def test_outage_action_pause_pauses_without_touching_traffic() -> None:
    policy = make_policy(outage={"maxDuration": 5, "action": "pause"})
    state = started()
    state, _ = step(state, SourceFailed("timeout"), T0 + 10, policy)
    state, actions = step(state, SourceFailed("timeout"), T0 + 15, policy)
    assert state.phase is Phase.PAUSED and state.desired == W20
    assert actions == (CollectEvidence(), WriteReport("paused"))


def test_router_failing_past_the_limit_rolls_back() -> None:
    state = started()
    state, _ = step(state, Tick(), T0 + 10)
    state, actions = step(state, RouterFailed("connection refused"), T0 + 10)
    assert state.phase is Phase.PROGRESSING and not state.confirmed
    state, actions = step(state, RouterFailed("connection refused"), T0 + 70)
    assert state.phase is Phase.ROLLED_BACK and "router" in state.reason
    assert actions == to_baseline(state)


def test_drift_is_repaired_and_noted() -> None:
    state = started()
    state, actions = step(state, Tick(), T0 + 10)
    state, actions = step(state, WeightsRead(ALL_BASELINE), T0 + 10)  # e.g. HAProxy restarted
    assert not state.confirmed and state.desired == W20
    assert actions == (SetWeights(W20, state.desired_reason), ReadWeights(W20))
    assert any("drift" in note for note in state.notes)
    state, actions = step(state, WeightsRead(W20), T0 + 10)
    assert state.confirmed and state.weight_changes[-1].reason.startswith("drift repaired")
    assert state.step_started_at == T0  # the hold is not restarted
    assert actions == (Observe(start=T0, end=T0 + 10),)


# ---------------------------------------------------------------------------- resume, abort


def test_resume_mid_step_continues_at_the_same_step_and_weights() -> None:
    state = started()
    for t in range(10, 70, 10):
        state, _ = look(state, healthy, T0 + t)
    state, _ = step(state, WeightsRead(W50), T0 + 60)
    state, _ = look(state, healthy, T0 + 70)
    restored = state_from_json(state_to_json(state))
    restored, actions = step(restored, Resumed(), T0 + 95)
    assert restored.step == 1 and restored.desired == W50
    assert actions == (ReadWeights(W50),)
    restored, actions = step(restored, WeightsRead(W50), T0 + 95)
    assert actions == (Observe(start=T0 + 70, end=T0 + 95),)  # the gap is analysed, not lost
    assert restored.step_started_at == T0 + 60
    assert len(restored.weight_changes) == len(state.weight_changes)


def test_resume_after_a_crash_between_the_intent_and_the_weight_change_reapplies_it() -> None:
    state = started()
    for t in range(10, 70, 10):
        state, _ = look(state, healthy, T0 + t)
    assert state.desired == W50 and not state.confirmed  # saved, then the process died
    restored, actions = step(state_from_json(state_to_json(state)), Resumed(), T0 + 80)
    assert restored.step == 1
    assert actions == (SetWeights(W50, restored.desired_reason), ReadWeights(W50))


def test_resume_of_a_finished_rollout_does_nothing() -> None:
    state = started()
    state, _ = look(state, failing, T0 + 10)
    state, _ = step(state, WeightsRead(ALL_BASELINE), T0 + 10)
    state, _ = step(state, ReportWritten(), T0 + 10)
    state, actions = step(state_from_json(state_to_json(state)), Resumed(), T0 + 500)
    assert state.phase is Phase.ROLLED_BACK and actions == ()


def test_resume_of_an_unfinished_rollback_retries_the_baseline_first() -> None:
    state = started()
    state, _ = look(state, failing, T0 + 10)
    state, actions = step(state, Resumed(), T0 + 30)
    assert actions == to_baseline(state)


def test_abort_returns_traffic_to_the_baseline_and_a_pending_abort_moves_nothing() -> None:
    state, actions = step(started(), Abort("operator"), T0 + 5)
    assert state.phase is Phase.ABORTED
    assert actions == to_baseline(state)
    state, actions = step(fresh(), Abort("operator"), T0)
    assert state.phase is Phase.ABORTED
    assert actions == (CollectEvidence(), WriteReport("aborted"))


def test_a_decision_is_final() -> None:
    state = started()
    state, _ = look(state, failing, T0 + 10)
    decided = replace(state, confirmed=True)
    later, actions = step(decided, Looked(healthy(T0 + 10, T0 + 20)), T0 + 20)
    assert later.phase is Phase.ROLLED_BACK and later.history == decided.history
    assert actions == (CollectEvidence(), WriteReport("rolled_back"))


# ---------------------------------------------------------------------------- by hand


def test_promote_full_skips_the_analysis_to_all_candidate_then_the_report() -> None:
    state, _ = look(started(), healthy, T0 + 10)  # step 1, mid-hold
    state, actions = step(state, Promote(full=True, reason="hotfix"), T0 + 15)
    assert state.phase is Phase.PROMOTED and state.desired == ALL_CANDIDATE
    assert state.reason == "promoted by hand: hotfix" and state.decided_at == T0 + 15
    assert actions == (SetWeights(ALL_CANDIDATE, "promoted"), ReadWeights(ALL_CANDIDATE))
    assert "promoted by hand at step 1: hotfix" in state.notes[-1]
    state, actions = step(state, WeightsRead(ALL_CANDIDATE), T0 + 16)
    assert actions == (CollectEvidence(), WriteReport("promoted"))
    state, actions = step(state, ReportWritten(("r.json",)), T0 + 17)
    assert state.report_written and state.report_paths == ("r.json",) and actions == ()


def test_promote_moves_to_the_next_step_whose_analysis_starts_at_its_confirmation() -> None:
    state, _ = look(started(), healthy, T0 + 10)
    state, actions = step(state, Promote(full=False, reason="looks fine"), T0 + 15)
    assert state.phase is Phase.PROGRESSING and state.step == 1 and state.desired == W50
    assert actions == (SetWeights(W50, state.desired_reason), ReadWeights(W50))
    assert "by hand: looks fine" in state.desired_reason
    state, actions = step(state, WeightsRead(W50), T0 + 16)
    assert state.confirmed and state.step_started_at == T0 + 16 and state.last_look_end == T0 + 16
    assert isinstance(actions[0], Wait) and actions[0].until == T0 + 30  # the grid after 16 + 5
    # Promoting at the last step is the promotion.
    state, actions = step(state, Promote(full=False, reason="done"), T0 + 20)
    assert state.phase is Phase.PROMOTED and state.desired == ALL_CANDIDATE


def test_promote_of_a_paused_rollout_resumes_at_the_next_step() -> None:
    state = replace(started(), phase=Phase.PAUSED, decided_at=T0 + 5, reason="inconclusive")
    state, actions = step(state, Promote(full=False, reason="ok"), T0 + 10)
    assert state.phase is Phase.PROGRESSING and state.step == 1 and state.decided_at is None
    assert actions == (SetWeights(W50, state.desired_reason), ReadWeights(W50))


def test_promote_and_retry_change_nothing_where_they_do_not_apply() -> None:
    state, _ = look(started(), failing, T0 + 10)
    decided = replace(state, confirmed=True, report_written=True)
    later, actions = step(decided, Promote(full=True, reason="x"), T0 + 20)
    assert later.phase is Phase.ROLLED_BACK and actions == ()
    progressing = started()
    later, actions = step(progressing, Retry("x"), T0 + 5)
    assert later.phase is Phase.PROGRESSING and later.step == 0 and actions == ()
    promoted = replace(progressing, phase=Phase.PROMOTED, confirmed=True, report_written=True)
    later, actions = step(promoted, Retry("x"), T0 + 5)
    assert later.phase is Phase.PROMOTED and actions == ()


def test_retry_starts_a_rolled_back_rollout_again_from_step_1_with_a_fresh_analysis() -> None:
    state, _ = look(started(), failing, T0 + 10)
    state, _ = step(state, WeightsRead(ALL_BASELINE), T0 + 11)
    state, _ = step(state, ReportWritten(("r.json",)), T0 + 12)
    assert state.phase is Phase.ROLLED_BACK
    state, actions = step(state, Retry("fixed the config"), T0 + 100)
    assert state.phase is Phase.PROGRESSING and state.step == 0 and state.desired == W20
    assert actions == (SetWeights(W20, state.desired_reason), ReadWeights(W20))
    assert state.history == () and state.analysis is None and state.judgement is None
    assert not state.report_written and state.report_paths == () and state.decided_at is None
    assert state.started_at == T0 + 100
    assert "retried from step 1 after it was rolled back: fixed the config" in state.notes[-1]
    state, actions = step(state, WeightsRead(W20), T0 + 101)
    assert state.confirmed and state.last_look_end == T0 + 101
    assert isinstance(actions[0], Wait)


def test_promote_and_retry_survive_the_state_file() -> None:
    state, _ = step(started(), Promote(full=True, reason="x"), T0 + 5)
    state, _ = step(state, ReportWritten(("a.json", "a.md")), T0 + 6)
    assert state_from_json(state_to_json(state)) == state


# ---------------------------------------------------------------------------- alerts

ROLLBACK_ON_ALERT = make_policy(alerts={"action": "rollback"})


def alert(starts_at: float = T0 - 30, fingerprint: str = "f00d") -> AlertFired:
    labels = (("alertname", "HighErrorRateFastBurn"), ("model_version", TARGET.candidate))
    return AlertFired("HighErrorRateFastBurn", labels, starts_at, fingerprint, "error rate > 5%")


def test_an_alert_pauses_where_traffic_is_and_the_reason_names_it() -> None:
    state, _ = look(started(), healthy, T0 + 10)
    state, actions = step(state, alert(), T0 + 12)
    assert state.phase is Phase.PAUSED and state.desired == W20 and state.decided_at == T0 + 12
    assert state.reason == (
        "alert HighErrorRateFastBurn fired on the candidate 2.4.0 (since 2023-11-14T22:12:50Z): "
        "error rate > 5%"
    )
    assert actions == (CollectEvidence(), WriteReport("paused"))  # no traffic moves
    assert 'alert HighErrorRateFastBurn {alertname="HighErrorRateFastBurn"' in state.notes[-1]
    assert state.notes[-1].endswith("fired: paused")


def test_an_alert_with_policy_rollback_returns_traffic_to_the_baseline() -> None:
    state, actions = step(started(), alert(), T0 + 5, ROLLBACK_ON_ALERT)
    assert state.phase is Phase.ROLLED_BACK and state.desired == ALL_BASELINE
    assert state.reason.startswith("alert HighErrorRateFastBurn fired on the candidate 2.4.0")
    assert actions == to_baseline(state)
    assert "rolled back: alert HighErrorRateFastBurn" in state.desired_reason
    # A paused rollout still serves the candidate: the policy's rollback applies to it too.
    paused, _ = step(started(), alert(fingerprint="a"), T0 + 5)
    state, actions = step(paused, alert(fingerprint="b"), T0 + 6, ROLLBACK_ON_ALERT)
    assert state.phase is Phase.ROLLED_BACK and actions == to_baseline(state)


def test_the_same_firing_acts_once_also_after_a_restart_and_a_new_firing_acts_again() -> None:
    paused, _ = step(started(), alert(), T0 + 5)
    # A person lets it go on; Alertmanager repeats the same firing: the person's call stands.
    state, _ = step(paused, Promote(full=False, reason="a flaky alert"), T0 + 10)
    state, _ = step(state, WeightsRead(W50), T0 + 11)
    restored = state_from_json(state_to_json(state))
    again, actions = step(restored, alert(), T0 + 12)
    assert again.phase is Phase.PROGRESSING and again.notes == restored.notes
    assert again.alerts_handled == restored.alerts_handled == (alert().key,)
    assert actions == (ReadWeights(W50),)  # it carries on as if woken
    # The alert resolved and fired again: a new firing, which acts.
    later, _ = step(again, alert(starts_at=T0 + 60), T0 + 70)
    assert later.phase is Phase.PAUSED and "since 2023-11-14T22:14:20Z" in later.reason


def test_an_alert_changes_nothing_once_the_rollout_is_decided() -> None:
    promoted, _ = step(started(), Promote(full=True, reason="x"), T0 + 5)
    promoted = replace(promoted, confirmed=True, report_written=True)
    rolled_back, _ = look(started(), failing, T0 + 10)
    rolled_back = replace(rolled_back, confirmed=True, report_written=True)
    paused, _ = step(started(), alert(fingerprint="a"), T0 + 5)
    paused = replace(paused, report_written=True)
    for decided in (promoted, rolled_back, paused):
        later, actions = step(decided, alert(fingerprint="b"), T0 + 50)
        assert later == replace(decided, updated_at=T0 + 50) and actions == ()


def test_the_alerts_remembered_are_bounded_the_latest_kept() -> None:
    state = replace(started(), alerts_handled=tuple(f"old@{i}" for i in range(MAX_ALERTS_HANDLED)))
    state, _ = step(state, alert(), T0 + 5)
    assert len(state.alerts_handled) == MAX_ALERTS_HANDLED
    assert state.alerts_handled[-1] == alert().key and "old@0" not in state.alerts_handled
