"""What watches the reconciler: notifications, metrics and logs.

Everyone who drives rollouts (`rollout run`'s driver, the in-cluster controller) reconciles
through `reconcile_observed`: one OpenTelemetry span per tick (the queries, the judge and
the router are its children, opened in the reconciler), timed, and the outcome handed to
the observers. An observer only records or queues: it never blocks, and one that fails is
logged and skipped, never in the way of a rollback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from opentelemetry.trace import Status, StatusCode

from rollout.engine import RouterFailed, SourceFailed
from rollout.reconcile import Advanced, Outcome, Reconciler, Rollout
from rollout.telemetry.tracing import tick_span

log = logging.getLogger("rollout.observe")


class Observer(Protocol):
    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        """What one tick of `rollout` did; `seconds` it took (wall clock)."""
        ...

    def close(self) -> None:
        """The driver is done: flush, stop threads (bounded)."""
        ...


class Observers:
    """Several observers as one; a failing one is logged, the others still run."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self.observers = list(observers)

    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        for observer in self.observers:
            try:
                observer.on_outcome(rollout, outcome, seconds)
            except Exception:
                log.exception(
                    "observer %s failed on rollout %s", type(observer).__name__, rollout.name
                )

    def close(self) -> None:
        for observer in self.observers:
            try:
                observer.close()
            except Exception:
                log.exception("observer %s failed to close", type(observer).__name__)


def reconcile_observed(reconciler: Reconciler, rollout: Rollout, observer: Observer) -> Outcome:
    """One reconcile of `rollout` inside its tick span, then the observers. A tick in which
    the metrics source or the router failed is an error span, saying why."""
    began = time.perf_counter()
    with tick_span(rollout) as span:
        outcome = reconciler.reconcile(rollout.key)
        seconds = time.perf_counter() - began
        state = outcome.state
        events = [h.event for h in outcome.happened if isinstance(h, Advanced)]
        span.set_attribute("rollout.phase", state.phase.value)
        span.set_attribute("rollout.step", state.step + 1)
        span.set_attribute("rollout.events", [type(e).__name__ for e in events])
        failures = [e.reason for e in events if isinstance(e, SourceFailed | RouterFailed)]
        if failures:
            span.set_status(Status(StatusCode.ERROR, failures[-1]))
        observer.on_outcome(rollout, outcome, seconds)
    return outcome
