"""One non-blocking step of one rollout: perform the engine's actions -> the next wake-up.

`Reconciler.reconcile(key)` feeds the rollout's pending event to the pure engine, saves the
state it returns (once per batch, only when it changed, before any of the batch's actions
run: the weights about to be set are on disk before the router is touched, so a crash
anywhere resumes with the same desired weights), performs the actions in order until one
learns something, and repeats until the engine asks to wait. A `Wait` is never slept on:
its time is returned to the scheduler. Nothing here prints, installs a signal handler or
exits: what happened is returned (`Outcome`), and the CLI says it and picks the exit code.

Batched looks (`batch_looks=True`, for a process driving many rollouts): a look is not
read by the rollout's own reconcile. It asks (its `Outcome.wake_at` is +inf) and
`read_looks()` later reads every asked look with one `observe_many` per metrics source,
so N rollouts on one Prometheus cost two queries per tick, not 2N (a third when some take
their first look); the next reconcile of each key feeds the engine that look's answer.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol

from rollout.analysis.observation import MetricsSource, MetricsSourceError, Observation, Target
from rollout.analysis.verdict import Comparison
from rollout.engine import (
    DECISIONS,
    Action,
    CollectEvidence,
    Event,
    Looked,
    Observe,
    ReadWeights,
    ReportWritten,
    RouterFailed,
    SetWeights,
    SourceFailed,
    Tick,
    Wait,
    WeightsRead,
    WriteReport,
    advance,
    look_due_after,
)
from rollout.evidence.exemplars import attach_spans
from rollout.evidence.gather import gather_evidence
from rollout.evidence.render import write_reports
from rollout.evidence.report import Report, SpanTiming, TraceEvidence
from rollout.gate import custom_window
from rollout.routers.base import RouterError, TrafficRouter, Weights
from rollout.spec import Policy
from rollout.state import (
    Phase,
    QueryLog,
    RolloutState,
    StateConflict,
    StateError,
    StateStore,
    Version,
)
from rollout.telemetry.tracing import child_span


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Only the scheduler sleeps (a simulated clock advances here); a reconcile never."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class EvidenceSettings:
    trace_link_template: str
    max_exemplars: int = 10
    report_dir: Path | None = None  # None: no report files
    spans_lookup: Callable[[str], tuple[SpanTiming, ...]] | None = None


@dataclass(frozen=True)
class Rollout:
    """What the reconciler needs to drive one rollout; the clients may be shared."""

    key: str  # the store's key, `<namespace>-<name>`
    name: str
    target: Target
    policy: Policy
    router: TrafficRouter
    source: MetricsSource
    evidence: EvidenceSettings
    policy_source: str = ""


@dataclass(frozen=True)
class Advanced:
    """The engine took `event`; `state` is what it returned (saved), `before` the weights
    the rollout wanted until then, `previous` the state it took the event in (what
    changed, for notices and metrics)."""

    event: Event
    before: Weights
    state: RolloutState
    previous: RolloutState | None = None


@dataclass(frozen=True)
class ReportDone:
    """A decision's report: built, and written to `paths` (or `failure` says why not)."""

    report: Report
    paths: dict[str, Path]
    failure: str = ""


Happening = Advanced | ReportDone


@dataclass(frozen=True)
class Outcome:
    key: str
    state: RolloutState
    # None: decided, settled, nothing left to do; +inf: waiting for `read_looks()`
    wake_at: float | None
    happened: tuple[Happening, ...] = ()


ASKED_FOR_LOOK = math.inf  # a batched look is asked for: no wake-up of its own
# A batched look that asks after its tick's read began waits for the next tick's read, if
# that is this close; else it is read on its own.
STRAGGLER_WAIT_SECONDS = 15.0


@dataclass
class _Tracked:
    rollout: Rollout
    pending: Event
    state: RolloutState | None = None
    version: Version | None = None
    loaded: bool = False
    evidence: tuple[TraceEvidence, ...] = ()
    evidence_notes: tuple[str, ...] = ()
    asked: Observe | None = None  # a batched look waiting for `read_looks()`
    lock: threading.Lock = field(default_factory=threading.Lock)


class Reconciler:
    """Drives tracked rollouts one non-blocking step at a time; shared store and clock."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        query_log: QueryLog | None = None,
        *,
        batch_looks: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.query_log = query_log
        self.batch_looks = batch_looks
        self._tracked: dict[str, _Tracked] = {}
        self._signals: dict[str, list[Event]] = {}  # outside events, by key, until reconciled
        self._last_read: dict[int, float] = {}  # when each source's latest batched read began
        self._mutex = threading.Lock()

    def track(
        self,
        rollout: Rollout,
        event: Event,
        state: RolloutState | None = None,
        version: Version | None = None,
    ) -> None:
        """Drive `rollout` from `event` (Started, Resumed, Abort, Tick). `state`: a new one
        (not saved yet, version None) or one just loaded with its version; None: loaded
        from the store at the first reconcile."""
        if state is not None and version is None and self.query_log is not None:
            self.query_log.clear(rollout.key)  # a new rollout: an old one's queries are not its
        with self._mutex:
            self._tracked[rollout.key] = _Tracked(
                rollout, event, state, version, loaded=state is not None
            )

    def signalled(self, key: str) -> bool:
        """Whether an outside event waits for the key's next reconcile."""
        with self._mutex:
            return bool(self._signals.get(key))

    def signal(self, key: str, event: Event) -> None:
        """Queue an outside event (an alert) for `key`, from any thread: its next reconcile
        feeds it to the engine before anything else. Wake the key (`Scheduler.add`) to have
        that reconcile now."""
        with self._mutex:
            self._signals.setdefault(key, []).append(event)

    def forget(self, key: str) -> None:
        with self._mutex:
            self._tracked.pop(key, None)

    def rollout(self, key: str) -> Rollout | None:
        tracked = self._tracked.get(key)
        return None if tracked is None else tracked.rollout

    def state(self, key: str) -> RolloutState | None:
        tracked = self._tracked.get(key)
        return None if tracked is None else tracked.state

    def reconcile(self, key: str) -> Outcome:
        """Run the rollout's actions until the engine waits or is done; never sleeps."""
        tracked = self._tracked[key]
        with tracked.lock:
            return self._reconcile(tracked)

    # ------------------------------------------------------------------ the step

    def _reconcile(self, tracked: _Tracked) -> Outcome:
        rollout = tracked.rollout
        if not tracked.loaded:
            loaded = self.store.load(rollout.key)
            if loaded is None:
                raise StateError(f"no saved rollout {rollout.key!r}")
            tracked.state, tracked.version = loaded
            tracked.loaded = True
        state = tracked.state
        assert state is not None
        happened: list[Happening] = []
        state = self._take_signals(tracked, state, happened)
        if tracked.asked is not None:  # its look is not read yet
            return Outcome(rollout.key, state, ASKED_FOR_LOOK, tuple(happened))
        event = tracked.pending
        while True:
            before = state.desired
            saved = state
            with child_span("rollout.judge") if isinstance(event, Looked) else nullcontext():
                state, actions = advance(state, event, rollout.policy, self.clock.now())
            try:
                state = self._save(tracked, saved, state)
            except StateConflict:
                tracked.loaded = False  # another writer: the next reconcile starts from theirs
                tracked.pending = Tick()
                raise
            happened.append(Advanced(event, before, state, saved))
            if not actions:
                tracked.pending = Tick()
                return Outcome(rollout.key, state, None, tuple(happened))
            performed = self._perform(tracked, state, actions, happened)
            if isinstance(performed, Wait):
                tracked.pending = Tick()
                return Outcome(rollout.key, state, performed.until, tuple(happened))
            if isinstance(performed, Observe):  # asked for (`_act`): `read_looks` reads it
                return Outcome(rollout.key, state, ASKED_FOR_LOOK, tuple(happened))
            event = performed

    def _take_signals(
        self, tracked: _Tracked, state: RolloutState, happened: list[Happening]
    ) -> RolloutState:
        """Feed the queued outside events to the engine and save each new state. What the
        engine asks for then is planned again from the state by the pending event."""
        key = tracked.rollout.key
        with self._mutex:
            outside = self._signals.pop(key, [])
        for position, event in enumerate(outside):
            before, saved = state.desired, state
            state, _ = advance(state, event, tracked.rollout.policy, self.clock.now())
            try:
                state = self._save(tracked, saved, state)
            except StateConflict:
                with self._mutex:  # for the other writer's state, at the next reconcile
                    self._signals[key] = [*outside[position:], *self._signals.get(key, [])]
                tracked.loaded = False
                tracked.pending = Tick()
                raise
            happened.append(Advanced(event, before, state))
        return state

    def _save(self, tracked: _Tracked, old: RolloutState, new: RolloutState) -> RolloutState:
        """Save once per batch, only when something besides the clock changed."""
        if tracked.version is not None and _same_but_time(old, new):
            return old  # what the store holds: nothing to write
        tracked.version = self.store.save(tracked.rollout.key, new, tracked.version)
        tracked.state = new
        return new

    def _perform(
        self,
        tracked: _Tracked,
        state: RolloutState,
        actions: tuple[Action, ...],
        happened: list[Happening],
    ) -> Event | Wait | Observe:
        """Run the batch in order; the first action that learns something ends it (a
        batched look ends it unread)."""
        for action in actions:
            if isinstance(action, Wait):
                return action
            event = self._act(tracked, state, action, happened)
            if event is not None:
                return event
        return Tick()

    def _act(
        self, tracked: _Tracked, state: RolloutState, action: Action, happened: list[Happening]
    ) -> Event | Observe | Wait | None:
        rollout = tracked.rollout
        if isinstance(action, SetWeights):
            began = self.clock.now()
            try:
                with child_span("rollout.router.set_weights", weights=str(action.weights)):
                    rollout.router.set_weights(action.weights)
            except RouterError as exc:
                return RouterFailed(str(exc), since=began)
            return None
        if isinstance(action, ReadWeights):
            began = self.clock.now()
            try:
                with child_span("rollout.router.get_weights"):
                    return WeightsRead(rollout.router.get_weights())
            except RouterError as exc:
                return RouterFailed(str(exc), since=began)
        if isinstance(action, Observe):
            if self.batch_looks:
                with self._mutex:  # decided and asked as one, never between a read's two
                    later = self._missed_read(tracked, state, action)
                    if later is None:
                        tracked.asked = action
                return action if later is None else Wait(later, "the next tick's read")
            with child_span("rollout.query", start=action.start, end=action.end):
                return self._observe(tracked, state, action)
        if isinstance(action, CollectEvidence):
            with child_span("rollout.evidence"):
                tracked.evidence, tracked.evidence_notes = _collect_evidence(rollout, state)
            return None
        assert isinstance(action, WriteReport)
        report = self.report(rollout.key, state)
        paths: dict[str, Path] = {}
        failure = ""
        if rollout.evidence.report_dir is not None:
            try:
                paths = write_reports(report, rollout.evidence.report_dir)
            except OSError as exc:  # the decision stands; only its files are missing
                failure = exc.strerror or type(exc).__name__
        happened.append(ReportDone(report, paths, failure))
        return ReportWritten(tuple(str(p) for p in paths.values()))

    def _missed_read(self, tracked: _Tracked, state: RolloutState, action: Observe) -> float | None:
        """When a batched look asks after its tick's read began (its last answer was still
        being judged), the next tick: its look then joins that read, one interval longer,
        instead of costing a read of its own (2 more queries in the tick). None: ask now.
        Called holding the mutex, as `read_looks` takes the looks asked for."""
        interval = tracked.rollout.policy.analysis.interval
        last_read = self._last_read.get(id(tracked.rollout.source))
        if last_read is None or state.last_look_end is None or state.source_outage is not None:
            return None  # nothing read yet, or a retry (not on the grid)
        if look_due_after(state.last_look_end, interval) > last_read:
            return None  # its tick's read is still to come
        tick = math.floor(action.end / interval)
        next_tick = (tick + 1) * interval
        if (
            math.floor(last_read / interval) != tick
            or next_tick - action.end > STRAGGLER_WAIT_SECONDS
        ):
            return None
        return next_tick

    def _observe(self, tracked: _Tracked, state: RolloutState, action: Observe) -> Event:
        rollout = tracked.rollout
        began = self.clock.now()  # an outage starts when its first failing attempt does
        try:
            observation = rollout.source.observe(
                rollout.target,
                action.start,
                action.end,
                custom_window=_custom_window(state, rollout.policy, action.start, action.end),
            )
        except MetricsSourceError as exc:
            return SourceFailed(str(exc), since=began)
        return self._looked(rollout.key, observation)

    def _looked(self, key: str, observation: Observation) -> Looked:
        if self.query_log is not None and observation.queries:
            # Before the look is saved: a query that ran is never missing from the log. A log
            # that cannot be written costs the report that look's text, not the rollout.
            with contextlib.suppress(OSError):
                self.query_log.append(key, observation)
        return Looked(observation)

    # ------------------------------------------------------------------ batched looks

    def read_looks(self) -> list[str]:
        """Read every look asked for since the last call, one `observe_many` per metrics
        source (every query evaluated at the latest end asked for: each rollout's look
        runs from its own start to that end). Returns the keys whose answer (a look, or
        the source's failure) is ready for their next reconcile."""
        with self._mutex:  # what this read takes, and when it began for `_missed_read`
            asking = [t for t in self._tracked.values() if t.asked is not None]
            began = self.clock.now()
            for tracked in asking:
                self._last_read[id(tracked.rollout.source)] = began
        by_source: dict[int, list[_Tracked]] = {}
        for tracked in asking:
            by_source.setdefault(id(tracked.rollout.source), []).append(tracked)
        ready: list[str] = []
        for group in by_source.values():
            for batch in _distinct_targets(group):
                ready.extend(self._read_batch(batch))
        return ready

    def _read_batch(self, batch: list[_Tracked]) -> list[str]:
        source = batch[0].rollout.source
        end = max(t.asked.end for t in batch if t.asked is not None)
        starts: dict[Target, float] = {}
        windows: dict[Target, float] = {}
        for tracked in batch:
            assert tracked.asked is not None and tracked.state is not None
            target, start = tracked.rollout.target, tracked.asked.start
            starts[target] = start
            windows[target] = _custom_window(tracked.state, tracked.rollout.policy, start, end)
        began = self.clock.now()
        answers: dict[Target, Event]
        try:
            with child_span("rollout.query", rollouts=len(batch), end=end):
                looks = source.observe_many(list(starts), starts, end, custom_window=windows)
        except MetricsSourceError as exc:
            answers = dict.fromkeys(starts, SourceFailed(str(exc), since=began))
        else:
            answers = {
                t.rollout.target: self._looked(t.rollout.key, looks[t.rollout.target])
                for t in batch
            }
        ready: list[str] = []
        with self._mutex:
            for tracked in batch:
                key = tracked.rollout.key
                if self._tracked.get(key) is not tracked:
                    continue  # tracked anew meanwhile (an abort, a new candidate): not its look
                tracked.asked = None
                tracked.pending = answers[tracked.rollout.target]
                ready.append(key)
        return ready

    # ------------------------------------------------------------------ the report

    def report(self, key: str, state: RolloutState) -> Report:
        """The decision's report: the state's looks with the queries the log kept for them."""
        tracked = self._tracked[key]
        rollout = tracked.rollout
        observations = state.history
        notes = [*state.notes, *tracked.evidence_notes]
        if self.query_log is not None and observations:
            try:
                logged = self.query_log.read(key)
            except OSError as exc:
                logged, notes = {}, [*notes, f"the query log could not be read: {exc}"]
            observations = tuple(
                replace(o, queries=logged.get((o.start, o.end), o.queries)) for o in observations
            )
            missing = sum(1 for o in observations if not o.queries)
            if missing:
                notes.append(f"the PromQL text of {missing} look(s) was not kept")
        return Report(
            kind="rollout",
            name=state.name,
            target=state.target,
            decision=DECISIONS.get(state.phase, state.phase.value),
            reason=state.reason,
            policy=rollout.policy,
            judgement=state.judgement,
            observations=observations,
            evidence=tracked.evidence,
            weight_changes=state.weight_changes,
            started_at=state.started_at or state.updated_at,
            finished_at=state.decided_at or state.updated_at,
            notes=tuple(notes),
            policy_source=rollout.policy_source,
        )


def _same_but_time(old: RolloutState, new: RolloutState) -> bool:
    """Equal but for `updated_at` (identity first: unchanged parts are the same objects,
    and a NaN in a judgement is not equal to itself)."""
    for f in fields(RolloutState):
        if f.name == "updated_at":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a is not b and a != b:
            return False
    return True


def _custom_window(state: RolloutState, policy: Policy, start: float, end: float) -> float:
    """The range custom-metric queries see (`analysis.window`, clipped to the rollout's start)."""
    since = state.started_at if state.started_at is not None else start
    return custom_window((start, end), since, policy)


def _distinct_targets(group: list[_Tracked]) -> list[list[_Tracked]]:
    """Batches in which no target appears twice (`observe_many` answers per target)."""
    batches: list[list[_Tracked]] = []
    seen: list[set[Target]] = []
    for tracked in group:
        target = tracked.rollout.target
        index = next((i for i, targets in enumerate(seen) if target not in targets), None)
        if index is None:
            batches.append([])
            seen.append(set())
            index = len(batches) - 1
        batches[index].append(tracked)
        seen[index].add(target)
    return batches


def latency_comparison(state: RolloutState) -> Comparison | None:
    comparisons = state.judgement.comparisons if state.judgement is not None else ()
    return next((c for c in comparisons if c.metric == "latency_p95"), None)


def _collect_evidence(
    rollout: Rollout, state: RolloutState
) -> tuple[tuple[TraceEvidence, ...], tuple[str, ...]]:
    start = state.started_at if state.started_at is not None else state.updated_at
    end = state.decided_at if state.decided_at is not None else state.updated_at
    if end <= start:
        return (), ()
    latency = latency_comparison(state)
    baseline_p95 = latency.baseline if latency is not None else None
    threshold = (
        baseline_p95 * (1 + rollout.policy.latency.max_regression)
        if baseline_p95 is not None and math.isfinite(baseline_p95)
        else None
    )
    settings = rollout.evidence
    items, found_notes = gather_evidence(
        rollout.source,
        rollout.target,
        start,
        end,
        slow_above=threshold,
        errors=True,
        template=settings.trace_link_template,
        limit=settings.max_exemplars,
        typical_of=_typical_of(rollout, state),
    )
    notes = list(found_notes)
    if threshold is None:
        notes.append("no baseline latency quantile: slow requests were not selected")
    evidence = items
    if settings.spans_lookup is not None and evidence:
        try:
            evidence = attach_spans(evidence, settings.spans_lookup)
        except Exception as exc:  # spans are a bonus: their absence is a note, not a stop
            notes.append(f"span timings could not be read: {exc}")
    return evidence, tuple(notes)


def _typical_of(rollout: Rollout, state: RolloutState) -> tuple[str, ...]:
    """Whose typical traces the report sets beside the telling ones: the baseline's always
    (its breakdown is the yardstick), the candidate's on a promotion (it has no slow ones)."""
    if rollout.evidence.max_exemplars == 0:
        return ()
    target = rollout.target
    promoted = state.phase is Phase.PROMOTED
    return (target.baseline, target.candidate) if promoted else (target.baseline,)
