"""Observers of the reconciler: one that fails is logged and skipped, never in the way of a
rollout (the driver's bench: real HAProxy, backfilled Prometheus, replay clock)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from rich.console import Console

from rollout.driver import run_from_spec
from rollout.exit_codes import ExitCode
from rollout.reconcile import Outcome, Rollout
from tests.support.backfill import BackfilledPrometheus
from tests.support.replay import POLICY, ReplayClock, Stack, make_spec


class Broken:
    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        raise RuntimeError("observer bug")

    def close(self) -> None:
        raise RuntimeError("observer bug at close")


class Counting:
    def __init__(self) -> None:
        self.ticks = 0
        self.closed = False

    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        assert seconds >= 0
        self.ticks += 1

    def close(self) -> None:
        self.closed = True


def test_a_failing_observer_is_logged_and_the_rollout_goes_on(
    stack: Stack,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    counting = Counting()
    code = run_from_spec(
        make_spec("gate-same", stack.haproxy, synthetic_prometheus.url),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=None,
        console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
        clock=ReplayClock(synthetic_prometheus.dataset.start + 120),
        observers=[Broken(), counting],
    )
    assert code is ExitCode.PROMOTED
    assert counting.ticks >= 6 and counting.closed  # every tick, then closed
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == counting.ticks + 1  # each tick and the close, logged
    assert "observer Broken failed on rollout gate-same" in failures[0].getMessage()
