"""The reconciler with plain values: fakes for the router and the source at their Protocols,
a clock that fails when slept on, and the local state store."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from rollout.analysis.observation import (
    Bucket,
    Exemplar,
    MetricsSourceError,
    Observation,
    QueryRecord,
    Target,
    VersionCounts,
)
from rollout.engine import Abort, AlertFired, Looked, Started
from rollout.reconcile import (
    Advanced,
    EvidenceSettings,
    Happening,
    Outcome,
    Reconciler,
    ReportDone,
    Rollout,
)
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.spec import Policy
from rollout.state import (
    LocalQueryLog,
    LocalStateStore,
    Phase,
    RolloutState,
    StateConflict,
    Version,
)

T0 = 1_700_000_000.0
LES = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, math.inf)
SHAPE = (0.10, 0.45, 0.80, 0.95, 0.99, 1.0, 1.0)
POLICY = Policy.model_validate(
    {
        "steps": [{"weight": 20, "hold": 60}, {"weight": 50, "hold": 60}],
        "analysis": {"interval": 10},
        "minRequests": 100,
        "inconclusiveGrace": 30,
        "outage": {"maxDuration": 60},
    }
)


def counts(requests: int, errors: int) -> VersionCounts:
    buckets = tuple(Bucket(le, round(requests * f)) for le, f in zip(LES, SHAPE, strict=True))
    return VersionCounts(requests=requests, errors=errors, buckets=buckets)


class NoSleepClock:
    """Time moves only when a test moves it; sleeping fails the test."""

    def __init__(self, now: float = T0) -> None:
        self.time = now

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        pytest.fail(f"a reconcile slept {seconds}s")


@dataclass
class FakeRouter:
    weights: Weights = ALL_BASELINE
    failing: bool = False
    sets: list[Weights] = field(default_factory=list)

    def get_weights(self) -> Weights:
        if self.failing:
            raise RouterError("admin socket refused")
        return self.weights

    def set_weights(self, weights: Weights) -> None:
        if self.failing:
            raise RouterError("admin socket refused")
        self.sets.append(weights)
        self.weights = weights

    def verify(self, weights: Weights) -> bool | None:
        return self.weights == weights


@dataclass
class FakeSource:
    """Counts per look; the candidate's errors per 200 requests; `down` raises."""

    candidate_errors: int = 1
    down: bool = False
    looks: int = 0
    batches: list[tuple[float, int]] = field(default_factory=list)  # (end, targets) per batch
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(
        self, target: Target, start: float, end: float, *, custom_window: float | None = None
    ) -> Observation:
        if self.down:
            raise MetricsSourceError("connection refused")
        with self.lock:
            self.looks += 1
        query = QueryRecord(
            "requests", f'requests{{model="{target.model}"}}[{end - start:g}s]', end, 4
        )
        return Observation(
            start,
            end,
            baseline=counts(800, 4),
            candidate=counts(200, self.candidate_errors),
            queries=(query,),
        )

    def observe_many(
        self,
        targets: Iterable[Target],
        start: float | Mapping[Target, float],
        end: float,
        *,
        custom_window: float | Mapping[Target, float] | None = None,
    ) -> dict[Target, Observation]:
        batch = list(targets)
        if self.down:
            raise MetricsSourceError("connection refused")
        with self.lock:
            self.batches.append((end, len(batch)))
        return {
            t: self.observe(t, start if isinstance(start, float) else start[t], end) for t in batch
        }

    def exemplars(
        self,
        target: Target,
        version: str,
        start: float,
        end: float,
        *,
        min_latency: float | None = None,
        errors_only: bool = False,
    ) -> tuple[Exemplar, ...]:
        return ()

    def close(self) -> None:
        pass


def rollout(
    key: str, router: FakeRouter, source: FakeSource, report_dir: Path | None = None
) -> Rollout:
    return Rollout(
        key=key,
        name=key,
        target=Target(key, "2.3.1", "2.4.0"),
        policy=POLICY,
        router=router,
        source=source,
        evidence=EvidenceSettings("http://t/{trace_id}", report_dir=report_dir),
    )


def start(reconciler: Reconciler, r: Rollout, clock: NoSleepClock) -> None:
    reconciler.track(r, Started(), RolloutState.new(r.name, r.target, "d", clock.now()))


def drive(reconciler: Reconciler, key: str, clock: NoSleepClock, limit: int = 200) -> Outcome:
    """What a scheduler does: reconcile, move the clock to the wake-up, again, till decided."""
    for _ in range(limit):
        outcome = reconciler.reconcile(key)
        if outcome.wake_at is None:
            return outcome
        assert outcome.wake_at >= clock.time
        clock.time = outcome.wake_at
    pytest.fail("no decision")


def test_a_reconcile_never_sleeps_it_returns_the_next_wake_up(tmp_path: Path) -> None:
    clock, router, source = NoSleepClock(), FakeRouter(), FakeSource()
    store = LocalStateStore(tmp_path)
    reconciler = Reconciler(store, clock, LocalQueryLog(tmp_path))
    start(reconciler, rollout("default-iris", router, source), clock)

    first = reconciler.reconcile("default-iris")
    assert first.wake_at == T0 + 10  # the first look is due an interval after the weights
    assert router.weights == Weights.candidate_share(20)
    assert first.state.confirmed and first.state.phase is Phase.PROGRESSING
    loaded = store.load("default-iris")
    assert loaded is not None and loaded[0].confirmed  # saved before it returned

    outcome = drive(reconciler, "default-iris", clock)
    assert outcome.state.phase is Phase.PROMOTED and router.weights == ALL_CANDIDATE
    assert router.sets == [Weights.candidate_share(20), Weights.candidate_share(50), ALL_CANDIDATE]
    assert clock.time == T0 + 120  # two 60 s holds of 10 s looks; the promotion at once
    saved = store.load("default-iris")
    assert saved is not None and saved[0].phase is Phase.PROMOTED and saved[0].report_written


def test_what_happened_is_returned_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    reconciler = Reconciler(LocalStateStore(tmp_path / "state"), clock, LocalQueryLog(tmp_path))
    r = rollout("default-iris", router, FakeSource(candidate_errors=60), tmp_path / "report")
    start(reconciler, r, clock)
    happened: list[Happening] = []
    for _ in range(50):
        outcome = reconciler.reconcile("default-iris")
        happened.extend(outcome.happened)
        if outcome.wake_at is None:
            break
        clock.time = outcome.wake_at
    assert outcome.state.phase is Phase.ROLLED_BACK and router.weights == ALL_BASELINE
    assert capsys.readouterr() == ("", "")
    looked = [h for h in happened if isinstance(h, Advanced) and isinstance(h.event, Looked)]
    assert looked and all(h.before == Weights.candidate_share(20) for h in looked)
    (done,) = [h for h in happened if isinstance(h, ReportDone)]
    assert done.report.decision == "rolled_back" and set(done.paths) >= {"json", "markdown"}
    # The state keeps numbers only; the report lists every query each look ran.
    assert all(not look.queries for look in outcome.state.history)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(report["observations"]) == len(outcome.state.history)
    assert all(len(o["queries"]) == 1 for o in report["observations"])


def test_an_unchanged_state_is_not_written(tmp_path: Path) -> None:
    """A wake-up that finds everything as it was (the weights read back, the look not due
    yet) changes only the clock: nothing is written."""
    clock, router = NoSleepClock(), FakeRouter()
    store = LocalStateStore(tmp_path)
    reconciler = Reconciler(store, clock, LocalQueryLog(tmp_path))
    start(reconciler, rollout("default-iris", router, FakeSource()), clock)
    first = reconciler.reconcile("default-iris")
    path = tmp_path / "default-iris.json"
    stamp = path.read_bytes(), os.stat(path).st_mtime_ns
    clock.time += 3  # early: the look is due at T0 + 10
    again = reconciler.reconcile("default-iris")
    assert again.wake_at == first.wake_at
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == stamp


def test_a_failing_source_is_a_later_wake_up_and_its_outage_is_counted(tmp_path: Path) -> None:
    clock, router, source = NoSleepClock(), FakeRouter(), FakeSource(down=True)
    reconciler = Reconciler(LocalStateStore(tmp_path), clock)
    start(reconciler, rollout("default-iris", router, source), clock)
    clock.time = reconciler.reconcile("default-iris").wake_at or 0
    outcome = reconciler.reconcile("default-iris")
    assert outcome.wake_at == clock.time + 1  # the first retry's backoff
    assert outcome.state.source_outage is not None
    assert "waiting for Prometheus" in outcome.state.message
    outcome = drive(reconciler, "default-iris", clock)
    assert outcome.state.phase is Phase.ROLLED_BACK and "limit" in outcome.state.reason
    assert router.weights == ALL_BASELINE


def test_a_failing_router_during_a_rollback_is_retried_on_wake_ups(tmp_path: Path) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock)
    r = rollout("default-iris", router, FakeSource())
    start(reconciler, r, clock)
    clock.time = reconciler.reconcile("default-iris").wake_at or 0
    router.failing = True
    reconciler.track(r, Abort("stop"))  # loaded from the store at the next reconcile
    outcome = reconciler.reconcile("default-iris")
    assert outcome.wake_at is not None and outcome.wake_at > clock.time
    assert outcome.state.phase is Phase.ABORTED and not outcome.state.confirmed
    router.failing = False
    outcome = drive(reconciler, "default-iris", clock)
    assert outcome.state.phase is Phase.ABORTED and router.weights == ALL_BASELINE


@dataclass
class Interloper:
    """A store that lets another writer save between a load and the reconciler's save."""

    inner: LocalStateStore
    other: LocalStateStore
    strike: bool = False

    def load(self, key: str) -> tuple[RolloutState, Version] | None:
        return self.inner.load(key)

    def save(self, key: str, state: RolloutState, expected_version: Version | None) -> Version:
        if self.strike:
            self.strike = False
            loaded = self.other.load(key)
            assert loaded is not None
            self.other.save(key, replace(loaded[0], message="theirs"), loaded[1])
        return self.inner.save(key, state, expected_version)


def test_a_stale_save_raises_state_conflict_and_the_next_reconcile_starts_from_theirs(
    tmp_path: Path,
) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    store = Interloper(LocalStateStore(tmp_path), LocalStateStore(tmp_path))
    reconciler = Reconciler(store, clock)
    start(reconciler, rollout("default-iris", router, FakeSource()), clock)
    clock.time = reconciler.reconcile("default-iris").wake_at or 0
    path = tmp_path / "default-iris.json"
    store.strike = True
    with pytest.raises(StateConflict):
        reconciler.reconcile("default-iris")
    theirs = json.loads(path.read_text())
    assert theirs["state"]["message"] == "theirs" and theirs["version"] == 3
    outcome = reconciler.reconcile("default-iris")  # reloaded: their version, then ours
    assert outcome.state.history and json.loads(path.read_text())["version"] == 4


def test_a_new_rollout_under_a_finished_ones_key_starts_a_fresh_query_log(tmp_path: Path) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    log = LocalQueryLog(tmp_path)
    reconciler = Reconciler(LocalStateStore(tmp_path), clock, log)
    r = rollout("default-iris", router, FakeSource())
    start(reconciler, r, clock)
    first = drive(reconciler, "default-iris", clock)
    assert len(log.read("default-iris")) == len(first.state.history) > 0
    (tmp_path / "default-iris.json").unlink()  # "remove the state file to start over"
    start(reconciler, r, clock)
    assert log.read("default-iris") == {}
    second = drive(reconciler, "default-iris", clock)
    assert len(log.read("default-iris")) == len(second.state.history)


# ---------------------------------------------------------------------------- outside events


def fired(fingerprint: str = "f00d") -> AlertFired:
    return AlertFired("HighErrorRateFastBurn", (("severity", "critical"),), T0, fingerprint)


def test_a_signalled_alert_is_fed_first_at_the_next_reconcile_and_pauses_with_a_report(
    tmp_path: Path,
) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    store = LocalStateStore(tmp_path / "state")
    reconciler = Reconciler(store, clock, LocalQueryLog(tmp_path / "state"))
    start(reconciler, rollout("default-iris", router, FakeSource(), tmp_path / "report"), clock)
    first = reconciler.reconcile("default-iris")
    assert first.wake_at == T0 + 10
    clock.time = T0 + 4  # woken early, by the alert: before the look is due
    reconciler.signal("default-iris", fired())
    outcome = reconciler.reconcile("default-iris")
    assert outcome.wake_at is None and outcome.state.phase is Phase.PAUSED
    assert isinstance(outcome.happened[0], Advanced)
    assert isinstance(outcome.happened[0].event, AlertFired)
    assert router.weights == Weights.candidate_share(20)  # a pause leaves traffic where it is
    (done,) = [h for h in outcome.happened if isinstance(h, ReportDone)]
    assert done.report.reason.startswith("alert HighErrorRateFastBurn fired on the candidate")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["decision"] == "paused" and "HighErrorRateFastBurn" in report["reason"]
    saved = store.load("default-iris")
    assert saved is not None and saved[0].alerts_handled == (fired().key,)
    # Delivered again (Alertmanager repeats): nothing changes, nothing is written.
    stamp = (tmp_path / "state" / "default-iris.json").read_bytes()
    reconciler.signal("default-iris", fired())
    again = reconciler.reconcile("default-iris")
    assert again.state.phase is Phase.PAUSED and again.wake_at is None
    assert not [h for h in again.happened if isinstance(h, ReportDone)]
    assert (tmp_path / "state" / "default-iris.json").read_bytes() == stamp


def test_a_signal_waits_for_no_running_reconcile_and_the_next_one_takes_it(
    tmp_path: Path,
) -> None:
    clock = NoSleepClock()
    entered, release = threading.Event(), threading.Event()

    @dataclass
    class SlowRouter(FakeRouter):
        def set_weights(self, weights: Weights) -> None:
            entered.set()
            assert release.wait(60), "never released"
            super().set_weights(weights)

    router = SlowRouter()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock)
    start(reconciler, rollout("default-iris", router, FakeSource()), clock)
    running = threading.Thread(target=reconciler.reconcile, args=("default-iris",))
    running.start()
    assert entered.wait(60)
    signalling = threading.Thread(target=reconciler.signal, args=("default-iris", fired()))
    signalling.start()
    signalling.join(60)
    assert not signalling.is_alive(), "signal() waited for the running reconcile"
    release.set()
    running.join(60)
    meanwhile = reconciler.state("default-iris")
    assert meanwhile is not None and meanwhile.phase is Phase.PROGRESSING
    outcome = reconciler.reconcile("default-iris")
    assert outcome.state.phase is Phase.PAUSED


def test_a_signal_reaches_a_rollout_whose_batched_look_is_not_read_yet(tmp_path: Path) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock, batch_looks=True)
    start(reconciler, rollout("default-iris", router, FakeSource()), clock)
    clock.time = reconciler.reconcile("default-iris").wake_at or 0
    asking = reconciler.reconcile("default-iris")
    assert asking.wake_at == math.inf  # its look waits for read_looks()
    reconciler.signal("default-iris", fired())
    paused = reconciler.reconcile("default-iris")
    assert paused.state.phase is Phase.PAUSED and paused.happened
    assert reconciler.read_looks() == ["default-iris"]
    done = reconciler.reconcile("default-iris")  # the look's answer: too late to count
    assert done.wake_at is None and done.state.phase is Phase.PAUSED
    assert done.state.history == () and done.state.report_written


def test_a_signal_whose_save_conflicts_is_applied_to_the_other_writers_state(
    tmp_path: Path,
) -> None:
    clock, router = NoSleepClock(), FakeRouter()
    store = Interloper(LocalStateStore(tmp_path), LocalStateStore(tmp_path))
    reconciler = Reconciler(store, clock)
    start(reconciler, rollout("default-iris", router, FakeSource()), clock)
    reconciler.reconcile("default-iris")
    reconciler.signal("default-iris", fired())
    store.strike = True
    with pytest.raises(StateConflict):
        reconciler.reconcile("default-iris")
    outcome = reconciler.reconcile("default-iris")  # reloaded: theirs, then the alert
    assert outcome.state.phase is Phase.PAUSED
    assert outcome.state.alerts_handled == (fired().key,)
