"""Wake-ups of many rollouts: a priority queue of due times and a small worker pool.

`Scheduler(step, clock, workers=N)` calls `step(key) -> next wake-up | None` (a reconcile)
for every key when it is due, never twice at once for the same key, and drops a key when
its step returns None (decided). `run()` returns once no key is left, or `stop()` was
called (or the `stop` event given to `run` is set). With one worker the steps run in the
calling thread, so a signal's exception (SIGTERM, Ctrl-C) stops the scheduler where it is
and a crash in a step propagates as it is: `rollout run` is this scheduler with one key.
With more, they run on threads (the work is I/O-bound); an exception in a step stops the
run and is raised from `run()`, unless `on_error(key, exc)` returns when to retry.

Batched work: a step may return +inf (the key waits for something shared, e.g. a batched
metrics read); `on_idle()` is called in the scheduler's thread whenever no wake-up is due
or running, and returns the keys it made ready: their answers. Answers run after the
wake-ups that are due, and may still be running when `on_idle` is called again. A
reconciler with batched looks passes `read_looks` there: the rollouts due at one moment all
ask first, then one read answers them all, and while Prometheus evaluates the next tick's
read the workers judge and save the last tick's answers (at 1000 rollouts a tick's answers
took longer than the time between the asks and the next read).

Time: due times are the clock's (unix seconds). Between steps the scheduler waits for the
earliest due time: on the system clock an interruptible wait (a new key or `stop()` wakes
it), on any other clock `clock.sleep` (a simulated clock advances there), and only while
no step is running.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rollout.reconcile import Clock, SystemClock

Step = Callable[[str], float | None]
OnError = Callable[[str, Exception], float | None]
OnIdle = Callable[[], list[str]]
POLL_SECONDS = 0.5  # how often an outside `stop` event is looked at while waiting


class Scheduler:
    def __init__(
        self,
        step: Step,
        clock: Clock,
        *,
        workers: int = 1,
        on_error: OnError | None = None,
        on_idle: OnIdle | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._step = step
        self._clock = clock
        self._workers = workers
        self._on_error = on_error
        self._on_idle = on_idle
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, tuple[float, int]] = {}  # the live entry of each queued key
        self._answers: deque[tuple[tuple[float, int], str]] = deque()  # on_idle's, in order
        self._running: set[str] = set()
        self._answering: set[str] = set()  # running keys taken from `_answers`
        self._again: dict[str, float] = {}  # added while running: due again at
        self._removed: set[str] = set()
        self._seq = itertools.count()
        self._stopped = threading.Event()
        self._stop: threading.Event | None = None  # the event given to `run`
        self._failure: BaseException | None = None
        self.decided: list[str] = []  # keys whose step returned None, in that order

    # ------------------------------------------------------------------ the API

    def add(self, key: str, at: float | None = None) -> None:
        """Run `key` at `at` (default: now); an earlier due time of a queued key wins."""
        when = self._clock.now() if at is None else at
        with self._cond:
            self._removed.discard(key)
            if key in self._running:
                self._again[key] = min(when, self._again.get(key, when))
            else:
                self._queue(key, when)
            self._cond.notify_all()

    def remove(self, key: str) -> None:
        """Stop scheduling `key` (a step of it that is running finishes)."""
        with self._cond:
            self._due.pop(key, None)
            self._again.pop(key, None)
            if key in self._running:
                self._removed.add(key)
            self._cond.notify_all()

    def stop(self) -> None:
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()

    def keys(self) -> set[str]:
        with self._cond:
            return set(self._due) | (self._running - self._removed)

    def next_due(self) -> float | None:
        with self._cond:
            return self._earliest()

    def run(self, stop: threading.Event | None = None) -> None:
        """Run due steps until no key is left or a stop is asked for."""
        self._stopped.clear()
        self._stop = stop
        if self._workers == 1:
            self._run_inline(stop)
            return
        with ThreadPoolExecutor(self._workers, thread_name_prefix="rollout") as pool:
            try:
                self._run_pool(pool, stop)
            finally:
                self._stopped.set()  # running steps finish; no new one starts
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    # ------------------------------------------------------------------ internals

    def _queue(self, key: str, when: float) -> None:
        current = self._due.get(key)
        if current is not None and current[0] <= when:
            return
        entry = (when, next(self._seq))
        self._due[key] = entry
        heapq.heappush(self._heap, (*entry, key))

    def _earliest(self) -> float | None:
        """The earliest due time (superseded heap entries dropped on the way)."""
        while self._heap:
            when, seq, key = self._heap[0]
            if self._due.get(key) == (when, seq):
                return when
            heapq.heappop(self._heap)
        return None

    def _pop_due(self, now: float) -> str | None:
        """A due wake-up, else the oldest answer; None when neither is there."""
        key = self._pop_wake_up(now)
        if key is not None:
            return key
        while self._answers:
            entry, key = self._answers.popleft()
            if self._due.get(key) == entry:  # else superseded or removed
                del self._due[key]
                self._answering.add(key)
                return key
        return None

    def _waking(self, now: float) -> bool:
        """Whether a wake-up (not an answer) is due or running."""
        earliest = self._earliest()
        return (earliest is not None and earliest <= now) or not self._running <= self._answering

    def _pop_wake_up(self, now: float) -> str | None:
        while self._heap:
            when, seq, key = self._heap[0]
            if self._due.get(key) != (when, seq):
                heapq.heappop(self._heap)  # superseded or removed
                continue
            if when > now:
                return None
            heapq.heappop(self._heap)
            del self._due[key]
            return key
        return None

    def _halted(self, stop: threading.Event | None) -> bool:
        return self._stopped.is_set() or (stop is not None and stop.is_set())

    def _run_inline(self, stop: threading.Event | None) -> None:
        while not self._halted(stop):
            with self._cond:
                if not self._due:
                    return
                key = self._pop_due(self._clock.now())
                if key is None:
                    if not self._idle():
                        self._wait(self._clock.now(), stop)
                    continue
                self._running.add(key)
            try:
                try:
                    wake = self._step(key)
                except Exception as exc:
                    wake = self._failed(key, exc)
            except BaseException:
                with self._cond:
                    self._running.discard(key)
                raise
            with self._cond:
                self._finished(key, wake)

    def _run_pool(self, pool: ThreadPoolExecutor, stop: threading.Event | None) -> None:
        with self._cond:
            while not self._halted(stop) and self._failure is None:
                if not self._due and not self._running:
                    return
                now = self._clock.now()
                started = False
                while len(self._running) < self._workers:
                    key = self._pop_due(now)
                    if key is None:
                        break
                    self._running.add(key)
                    pool.submit(self._work, key)
                    started = True
                if started or (not self._waking(now) and self._idle()):
                    continue
                if self._running and not isinstance(self._clock, SystemClock):
                    self._cond.wait(POLL_SECONDS)  # a simulated clock moves only when idle
                else:
                    self._wait(now, stop)

    def _idle(self) -> bool:
        """Call `on_idle` (holding no lock) and queue the keys it made ready; True if any."""
        if self._on_idle is None:
            return False
        self._cond.release()
        try:
            ready = self._on_idle()
        finally:
            self._cond.acquire()
        now = self._clock.now()
        for key in ready:
            if key in self._due:  # still waiting (not removed meanwhile)
                entry = (now, next(self._seq))
                self._due[key] = entry
                self._answers.append((entry, key))
        return bool(ready)

    def _work(self, key: str) -> None:
        """Run `key`, then every key due meanwhile: a worker takes the next one itself, so a
        thousand keys due at once do not each wake the dispatcher's thread (its wake-ups held
        the GIL a tenth of a 1000-rollout tick, sampled with py-spy)."""
        following: str | None = key
        while following is not None:
            key = following
            try:
                wake = self._step(key)
            except Exception as exc:
                try:
                    wake = self._failed(key, exc)
                except BaseException as failure:
                    wake = None
                    self._fail(failure)
            except BaseException as failure:
                wake = None
                self._fail(failure)
            with self._cond:
                answered = key in self._answering
                self._finished(key, wake)
                following = self._take_due()
                # The dispatcher waits for this: the last of the wake-ups lets it read the
                # next batch while answers run; no work left, it waits for the next due time.
                if following is None or (not answered and not self._waking(self._clock.now())):
                    self._cond.notify_all()

    def _take_due(self) -> str | None:
        """The next due key for a worker that just finished one; None when stopping."""
        if self._halted(self._stop) or self._failure is not None:
            return None
        key = self._pop_due(self._clock.now())
        if key is not None:
            self._running.add(key)
        return key

    def _fail(self, failure: BaseException) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = failure
            self._cond.notify_all()

    def _failed(self, key: str, exc: Exception) -> float | None:
        if self._on_error is None:
            raise exc
        return self._on_error(key, exc)

    def _finished(self, key: str, wake: float | None) -> None:
        self._running.discard(key)
        self._answering.discard(key)
        again = self._again.pop(key, None)
        if key in self._removed:
            self._removed.discard(key)
            return
        if wake is None and again is None:
            self.decided.append(key)
            return
        self._queue(key, min(t for t in (wake, again) if t is not None))

    def _wait(self, now: float, stop: threading.Event | None) -> None:
        """Until the earliest due time; called holding the condition."""
        upcoming = self._earliest()
        if upcoming == math.inf:
            upcoming = None  # only keys waiting for `on_idle`'s work
        if isinstance(self._clock, SystemClock):
            timeout = POLL_SECONDS if upcoming is None else max(0.0, upcoming - now)
            if stop is not None:
                timeout = min(timeout, POLL_SECONDS)
            self._cond.wait(timeout)
            return
        if upcoming is None:
            return
        self._cond.release()
        try:
            self._clock.sleep(max(0.0, upcoming - now))
        finally:
            self._cond.acquire()
