"""Engine-driven rollouts: `rollout.engine.advance` decides, the simulated world follows.

`drive` plays the part of `rollout/driver.py` with a simulated router, Prometheus and clock:
it starts a `RolloutState`, feeds `Started()`, then performs the actions the engine returns in
order, the first one that learns something ending the batch (as `Driver._perform` does):

- SetWeights: the simulated router takes them, the traffic follows at once;
- ReadWeights: `WeightsRead(the router's weights)`;
- Observe(start, end): that look's counts (`scrape.py`), `Looked(observation)`;
- Wait(until): the clock and the traffic move on to `until`, `Tick()`;
- CollectEvidence: nothing to collect; WriteReport: `ReportWritten()`;

until the engine has nothing left to do. Routers and Prometheus never fail here and actions
take no time, so the weights change only when the engine's verdicts say so.

`old_advance_rule` swaps in the step-advance rule of before issue 8 (a step passed at its hold's
end on any look whose verdict was "no regression shown yet"), for the trade-off rows.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import rollout.engine as engine
from benchmarks.scrape import DirectTraffic
from rollout.analysis.accumulate import Analysis
from rollout.analysis.observation import Target
from rollout.analysis.verdict import Judgement, Verdict
from rollout.engine import (
    CollectEvidence,
    Event,
    Looked,
    Observe,
    ReadWeights,
    ReportWritten,
    SetWeights,
    Started,
    Tick,
    Wait,
    WeightsRead,
    WriteReport,
    advance,
)
from rollout.spec import Policy, Step
from rollout.state import Phase, RolloutState

TARGET = Target(model="ranker", baseline="2.3.1", candidate="2.4.0")
# A probe sees each Looked event before the engine does: (look number from 1, state, event, now).
Probe = Callable[[int, RolloutState, Looked, float], None]


@dataclass(frozen=True)
class Record:
    """One engine-driven rollout."""

    phase: str  # Promoted, RolledBack, Paused (Progressing: not decided within the time limit)
    decided: float  # seconds from the start to the decision; inf when undecided
    promoted: float  # seconds from the start to the promotion; inf when not promoted
    bad: int  # candidate's bad requests served until the decision
    looks: int
    weights: tuple[tuple[float, int], ...]  # (seconds from the start, candidate %) when confirmed
    judge_seconds: float  # wall time in advance(state, Looked(...)), which runs the judge


def time_limit(policy: Policy) -> float:
    """Longer than any rollout the policy can make (holds, graces, a look each), in seconds."""
    holds = sum(s.hold + policy.inconclusive_grace + policy.analysis.interval for s in policy.steps)
    return 4.0 * holds + 3600.0


def drive(traffic: DirectTraffic, policy: Policy, probe: Probe | None = None) -> Record:
    """Run one rollout through the engine to its end; `traffic` is at the start time."""
    start = now = traffic.now
    limit = start + time_limit(policy)
    state = RolloutState.new("benchmark", TARGET, "benchmark", now)
    event: Event = Started()
    looks, spent = 0, 0.0
    while True:
        if isinstance(event, Looked):
            looks += 1
            if probe is not None:
                probe(looks, state, event, now)
            began = time.perf_counter()
            state, actions = advance(state, event, policy, now)
            spent += time.perf_counter() - began
        else:
            state, actions = advance(state, event, policy, now)
        if not actions or (now >= limit and not state.phase.decided):
            break
        event = Tick()
        for action in actions:
            if isinstance(action, SetWeights):
                traffic.set_weights(action.weights)
                continue
            if isinstance(action, ReadWeights):
                event = WeightsRead(traffic.weights)
            elif isinstance(action, Observe):
                event = Looked(traffic.observe(action.start, action.end))
            elif isinstance(action, Wait):
                now = max(now, action.until)
                traffic.run_until(now)
                event = Tick()
            elif isinstance(action, CollectEvidence):
                continue
            elif isinstance(action, WriteReport):
                event = ReportWritten()
            break
    decided = state.decided_at - start if state.decided_at is not None else math.inf
    return Record(
        phase=state.phase.value,
        decided=decided if state.phase.decided else math.inf,
        promoted=decided if state.phase is Phase.PROMOTED else math.inf,
        bad=traffic.bad,
        looks=looks,
        weights=tuple((c.at - start, c.weights.candidate) for c in state.weight_changes),
        judge_seconds=spent,
    )


JudgeNext = Callable[..., tuple[Analysis | None, Judgement]]  # judge_next's signature


def engine_judge() -> JudgeNext:
    """The judge the engine calls (`rollout.engine` imports `judge_next` by name)."""
    function: JudgeNext = vars(engine)["judge_next"]
    return function


def set_engine_judge(function: JudgeNext) -> None:
    vars(engine)["judge_next"] = function


@contextlib.contextmanager
def old_advance_rule() -> Iterator[None]:
    """While inside: a step passes on any look whose verdict is NO_REGRESSION (issue 4's rule),
    not only when the judgement is `ready` (issue 8's). The engine is otherwise unchanged."""
    original = engine_judge()

    def judge_next(*args: Any, **kwargs: Any) -> tuple[Analysis | None, Judgement]:
        analysis, judgement = original(*args, **kwargs)
        return analysis, replace(judgement, ready=judgement.verdict is Verdict.NO_REGRESSION)

    set_engine_judge(judge_next)
    try:
        yield
    finally:
        set_engine_judge(original)


def long_policy(policy: Policy, looks_per_step: int = 40) -> Policy:
    """The policy with every step held for `looks_per_step` looks: 120 looks in three steps."""
    hold = looks_per_step * policy.analysis.interval
    steps = tuple(Step(weight=s.weight, hold=hold) for s in policy.steps)
    return policy.model_copy(update={"steps": steps, "name": f"{policy.name}-long"})


class CallTimer:
    """A probe that times `advance(state, Looked(observation), policy, now)` at chosen looks,
    `repeats` times each (advance is pure: the same call gives the same answer)."""

    def __init__(self, policy: Policy, looks: tuple[int, ...], repeats: int) -> None:
        self.policy, self.repeats = policy, repeats
        self.seconds: dict[int, list[float]] = {look: [] for look in looks}

    def __call__(self, look: int, state: RolloutState, event: Looked, now: float) -> None:
        if look not in self.seconds:
            return
        for _ in range(self.repeats):
            began = time.perf_counter()
            advance(state, event, self.policy, now)
            self.seconds[look].append(time.perf_counter() - began)
