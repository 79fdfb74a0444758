"""The scheduler: many rollouts driven by one process, on a simulated clock and on the system
clock, with fakes for the router and the source (tests/test_reconcile.py has them)."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rollout.analysis.observation import Observation, Target
from rollout.engine import Started
from rollout.reconcile import Reconciler, SystemClock
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE
from rollout.scheduler import Scheduler
from rollout.state import LocalQueryLog, LocalStateStore, Phase, RolloutState
from tests.test_reconcile import T0, FakeRouter, FakeSource, rollout


class OverlapWatch:
    """Around each step: which keys had a step start while another of theirs still ran, and
    how many steps each key had."""

    def __init__(self) -> None:
        self.overlaps: list[str] = []
        self.counts: dict[str, int] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self, key: str) -> Iterator[int]:
        """The step's number for `key` (1 for its first)."""
        with self._lock:
            if key in self._running:
                self.overlaps.append(key)
            self._running.add(key)
            self.counts[key] = self.counts.get(key, 0) + 1
            count = self.counts[key]
        try:
            yield count
        finally:
            with self._lock:
                self._running.discard(key)


class SimulatedClock:
    """Thread-safe simulated time: the scheduler's sleep moves it (only when no step runs)."""

    def __init__(self, now: float = T0) -> None:
        self._time = now
        self._lock = threading.Lock()
        self.sleeps = 0

    def now(self) -> float:
        with self._lock:
            return self._time

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._time += seconds
            self.sleeps += 1


@dataclass
class SlowSource(FakeSource):
    """A source whose queries take real time (I/O), counting how many run at once."""

    seconds: float = 0.01
    running: int = 0
    peak: int = 0
    gauge: threading.Lock = field(default_factory=threading.Lock)

    def observe(
        self, target: Target, start: float, end: float, *, custom_window: float | None = None
    ) -> Observation:
        with self.gauge:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(self.seconds)
            return super().observe(target, start, end, custom_window=custom_window)
        finally:
            with self.gauge:
                self.running -= 1


def test_many_rollouts_driven_concurrently_by_one_scheduler_reach_their_decisions(
    tmp_path: Path,
) -> None:
    clock = SimulatedClock()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock, LocalQueryLog(tmp_path))
    healthy, failing = SlowSource(), SlowSource(candidate_errors=60)  # shared, as clients are
    routers: dict[str, FakeRouter] = {}
    steps = OverlapWatch()

    def step(key: str) -> float | None:
        with steps.running(key):
            return reconciler.reconcile(key).wake_at

    scheduler = Scheduler(step, clock, workers=8)
    for i in range(40):
        key = f"default-model-{i}"
        routers[key] = FakeRouter()
        r = rollout(key, routers[key], failing if i % 4 == 0 else healthy)
        reconciler.track(r, Started(), RolloutState.new(key, r.target, "d", clock.now()))
        scheduler.add(key, at=T0 + i % 7)  # staggered starts
    scheduler.run()

    assert sorted(scheduler.decided) == sorted(routers) and not scheduler.keys()
    assert not steps.overlaps  # a key never runs twice at once
    assert max(healthy.peak, failing.peak) > 1  # the looks did run concurrently
    store = LocalStateStore(tmp_path)
    for i, (key, router) in enumerate(routers.items()):
        loaded = store.load(key)
        assert loaded is not None
        state = loaded[0]
        if i % 4 == 0:
            assert state.phase is Phase.ROLLED_BACK and router.weights == ALL_BASELINE
        else:
            assert state.phase is Phase.PROMOTED and router.weights == ALL_CANDIDATE
        assert state.report_written
    assert clock.now() < T0 + 200  # simulated: 2 x 60 s holds, starts staggered by < 7 s


@pytest.mark.parametrize("workers", [1, 4])
def test_batched_looks_read_every_due_rollout_of_a_source_at_once(
    tmp_path: Path, workers: int
) -> None:
    """Rollouts started apart look on the interval's grid; each tick's looks of one source are
    one `observe_many`, and the decisions are those of unbatched looks."""
    clock = SimulatedClock()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock, batch_looks=True)
    healthy, failing = FakeSource(), FakeSource(candidate_errors=60)
    routers: dict[str, FakeRouter] = {}
    scheduler = Scheduler(
        lambda key: reconciler.reconcile(key).wake_at,
        clock,
        workers=workers,
        on_idle=reconciler.read_looks,
    )
    for i in range(24):
        key = f"default-model-{i}"
        routers[key] = FakeRouter()
        r = rollout(key, routers[key], failing if i % 4 == 0 else healthy)
        reconciler.track(r, Started(), RolloutState.new(key, r.target, "d", clock.now()))
        scheduler.add(key, at=T0 + i % 7)  # staggered starts
    scheduler.run()

    assert sorted(scheduler.decided) == sorted(routers)
    for i, (key, router) in enumerate(routers.items()):
        state = reconciler.state(key)
        assert state is not None
        expected = Phase.ROLLED_BACK if i % 4 == 0 else Phase.PROMOTED
        assert state.phase is expected and state.history
        assert router.weights == (ALL_BASELINE if i % 4 == 0 else ALL_CANDIDATE)
    # Every look was read in a batch, one per source and tick, all ending at one moment.
    assert healthy.looks == sum(n for _, n in healthy.batches)
    assert len({end for end, _ in healthy.batches}) == len(healthy.batches)
    assert max(n for _, n in healthy.batches) == 18  # every healthy rollout in one read
    ticks = {end for source in (healthy, failing) for end, _ in source.batches}
    assert len(ticks) < healthy.looks / 10


def test_a_failed_batched_read_is_each_rollouts_source_outage(tmp_path: Path) -> None:
    clock = SimulatedClock()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock, batch_looks=True)
    source = FakeSource(down=True)
    keys = []
    for i in range(3):
        r = rollout(f"default-model-{i}", FakeRouter(), source)
        reconciler.track(r, Started(), RolloutState.new(r.name, r.target, "d", clock.now()))
        keys.append(r.key)
    for key in keys:
        while (wake := reconciler.reconcile(key).wake_at) != math.inf:
            assert wake is not None
            clock.sleep(max(0.0, wake - clock.now()))
        assert reconciler.reconcile(key).wake_at == math.inf  # still waiting for the read
    assert sorted(reconciler.read_looks()) == sorted(keys)
    for key in keys:
        outcome = reconciler.reconcile(key)
        assert outcome.state.source_outage is not None
        assert outcome.state.phase is Phase.PROGRESSING and not outcome.state.history
        assert outcome.wake_at is not None and clock.now() < outcome.wake_at < math.inf
    assert reconciler.read_looks() == []  # nothing asked until their retry is due


def test_a_look_that_asks_after_its_ticks_read_joins_the_next_tick_s_read(
    tmp_path: Path,
) -> None:
    """A rollout whose last answer was still being judged when its tick's read began does not
    cost a read of its own: it waits for the next tick, and its look spans both intervals."""
    clock = SimulatedClock()
    reconciler = Reconciler(LocalStateStore(tmp_path), clock, batch_looks=True)
    source = FakeSource()
    on_time, late = (rollout(f"default-model-{i}", FakeRouter(), source) for i in range(2))
    for r in (on_time, late):
        reconciler.track(r, Started(), RolloutState.new(r.name, r.target, "d", clock.now()))
        wake = reconciler.reconcile(r.key).wake_at  # weights set and confirmed
    assert wake is not None and wake != math.inf
    clock.sleep(wake - clock.now())  # the first tick
    assert reconciler.reconcile(on_time.key).wake_at == math.inf  # asks
    assert reconciler.read_looks() == [on_time.key]  # the tick's read, without `late`
    waited = reconciler.reconcile(late.key).wake_at
    assert waited == wake + 10  # the next tick (interval 10 s), not a read now
    assert reconciler.read_looks() == []
    next_tick = reconciler.reconcile(on_time.key).wake_at  # its answer
    assert next_tick == waited
    clock.sleep(waited - clock.now())
    for r in (on_time, late):
        assert reconciler.reconcile(r.key).wake_at == math.inf
    assert sorted(reconciler.read_looks()) == sorted([on_time.key, late.key])
    assert [n for _, n in source.batches] == [1, 2]  # two ticks, two reads
    reconciler.reconcile(late.key)
    state = reconciler.state(late.key)
    assert state is not None and len(state.history) == 1
    look = state.history[0]
    assert look.end == waited and look.end - look.start > 10  # both intervals, counted once


def test_one_worker_runs_in_the_calling_thread_and_a_crash_propagates(tmp_path: Path) -> None:
    threads: list[str] = []
    clock = SimulatedClock()

    class Crash(BaseException):
        pass

    def step(key: str) -> float | None:
        threads.append(threading.current_thread().name)
        if len(threads) == 3:
            raise Crash()
        return clock.now() + 10

    scheduler = Scheduler(step, clock)
    scheduler.add("a")
    with pytest.raises(Crash):
        scheduler.run()
    assert set(threads) == {threading.current_thread().name}
    assert clock.sleeps == 2  # waited for each wake-up on the clock, between steps


def test_a_failing_step_stops_the_pool_unless_on_error_says_when_to_retry() -> None:
    clock = SimulatedClock()
    calls: dict[str, int] = {}

    def step(key: str) -> float | None:
        calls[key] = calls.get(key, 0) + 1
        if key == "bad" and calls[key] < 3:
            raise RuntimeError("boom")
        return None

    scheduler = Scheduler(step, clock, workers=2)
    scheduler.add("bad")
    with pytest.raises(RuntimeError, match="boom"):
        scheduler.run()

    retried: list[str] = []

    def on_error(key: str, exc: Exception) -> float:
        retried.append(f"{key}: {exc}")
        return clock.now() + 5

    calls.clear()
    scheduler = Scheduler(step, clock, workers=2, on_error=on_error)
    scheduler.add("bad")
    scheduler.add("good")
    scheduler.run()
    assert sorted(scheduler.decided) == ["bad", "good"] and calls["bad"] == 3
    assert retried == ["bad: boom", "bad: boom"]


def test_keys_are_added_and_removed_while_it_runs_and_a_stop_event_ends_it() -> None:
    """On the system clock: a wait is interruptible; a key added while it waits runs at once,
    a removed key never runs again, and `stop` ends `run` promptly."""
    ran: list[str] = []
    stop = threading.Event()

    def step(key: str) -> float | None:
        ran.append(key)
        return time.time() + 3600  # next wake-up in an hour

    scheduler = Scheduler(step, SystemClock(), workers=2)
    scheduler.add("a")
    runner = threading.Thread(target=scheduler.run, kwargs={"stop": stop})
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while ran != ["a"] and time.monotonic() < deadline:
            time.sleep(0.01)
        scheduler.add("b")  # wakes the waiting scheduler
        while "b" not in ran and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == ["a", "b"]
        scheduler.remove("a")
        assert scheduler.keys() == {"b"}
        scheduler.add("b")  # due now again: an earlier due time wins
        while ran.count("b") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == ["a", "b", "b"]
    finally:
        began = time.monotonic()
        stop.set()
        runner.join(5)
    assert not runner.is_alive() and time.monotonic() - began < 2
    assert scheduler.decided == []  # stopped, not decided: "b" is still scheduled
    assert scheduler.keys() == {"b"}


def test_keys_due_at_once_each_run_alone_and_in_turn_until_decided() -> None:
    """A thousand keys due together and due again at once (a tick of a controller): every step
    runs, none twice at the same time for one key, and every key ends decided."""
    clock = SimulatedClock()
    steps = OverlapWatch()

    def step(key: str) -> float | None:
        with steps.running(key) as count:
            time.sleep(0.0001)  # I/O: other workers run meanwhile
        return clock.now() if count < 3 else None

    scheduler = Scheduler(step, clock, workers=8)
    keys = [f"rollout-{i}" for i in range(1000)]
    for key in keys:
        scheduler.add(key)
    scheduler.run()
    assert steps.overlaps == []
    assert steps.counts == {key: 3 for key in keys}
    assert sorted(scheduler.decided) == sorted(keys)


def test_wake_ups_due_run_before_the_answers_of_a_batched_read() -> None:
    """A batch's answers wait behind the wake-ups due meanwhile: the next tick's asks are not
    held up by the last tick's judging."""
    clock = SimulatedClock()
    order: list[str] = []
    reads: list[int] = []

    def step(key: str) -> float | None:
        order.append(key)
        if order.count(key) == 1 and key.startswith("ask"):
            return math.inf  # waits for the read
        if key == "ask-1":
            scheduler.add("wake")  # due now, after the answers were queued
        return None

    def read() -> list[str]:
        reads.append(len(reads))
        return ["ask-1", "ask-2"] if len(reads) == 1 else []

    scheduler = Scheduler(step, clock, workers=1, on_idle=read)
    scheduler.add("ask-1")
    scheduler.add("ask-2")
    scheduler.run()
    assert order == ["ask-1", "ask-2", "ask-1", "wake", "ask-2"]


def test_the_next_read_is_asked_for_while_the_last_answers_still_run() -> None:
    """With workers, `on_idle` comes again once no wake-up is due or running, even while an
    answer is still being judged: the next read overlaps the last answers."""
    clock = SimulatedClock()
    next_read = threading.Event()
    held: list[bool] = []
    reads: list[int] = []

    def step(key: str) -> float | None:
        if key == "ask" and not reads:
            return math.inf  # waits for the read
        held.append(next_read.wait(10))  # the answer: judged until the next read is asked
        return None

    def read() -> list[str]:
        reads.append(len(reads))
        if len(reads) == 1:
            return ["ask"]
        next_read.set()
        return []

    scheduler = Scheduler(step, clock, workers=2, on_idle=read)
    scheduler.add("ask")
    scheduler.run()
    assert held == [True]
    assert scheduler.decided == ["ask"]
