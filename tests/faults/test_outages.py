"""Prometheus and HAProxy outages under a real `rollout run` on a real stack."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE
from rollout.state import Phase
from tests.support.cli_faults import (
    OUTAGE_LIMIT,
    W20,
    W50,
    FaultStack,
    haproxy_restart,
    prometheus_long_outage,
    prometheus_short_outage,
    rollback_while_router_down,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_short_prometheus_outage_holds_the_weights_waits_and_goes_on(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    outcome = prometheus_short_outage(fault_stack, tmp_path)
    assert outcome.held == W20  # HAProxy kept step 1's weights while Prometheus was away
    assert outcome.code == 0 and outcome.state.phase is Phase.PROMOTED
    assert outcome.changes == [W20, W50, ALL_CANDIDATE]
    assert "waiting for Prometheus" in outcome.output
    assert "is unreachable" in outcome.output  # and why
    assert any("Prometheus failing" in note for note in outcome.state.notes)


def test_prometheus_down_past_the_limit_rolls_back_to_all_baseline(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    outcome = prometheus_long_outage(fault_stack, tmp_path)
    assert outcome.code == 1 and outcome.state.phase is Phase.ROLLED_BACK
    assert f"past the policy's limit of {OUTAGE_LIMIT:g}s" in outcome.state.reason
    assert outcome.weights == ALL_BASELINE
    assert outcome.answered == Counter({"v1": 40})
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["decision"] == "rolled_back" and "Prometheus" in report["reason"]


def test_haproxy_restarted_with_its_original_weights_gets_the_rollouts_weights_back(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    outcome = haproxy_restart(fault_stack, tmp_path)
    assert outcome.code == 0 and outcome.state.phase is Phase.PROMOTED
    # Step 1's weights confirmed twice: once set, once restored after the restart.
    assert outcome.changes == [W20, W20, W50, ALL_CANDIDATE]
    assert any("router" in note or "drift" in note for note in outcome.state.notes)
    assert outcome.answered == Counter({"v2": 40})


def test_a_rollback_is_retried_until_haproxy_confirms_all_baseline(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    outcome = rollback_while_router_down(fault_stack, tmp_path)
    decided = outcome.at_fault
    assert decided is not None and decided.desired == ALL_BASELINE and not decided.confirmed
    assert outcome.code == 1 and outcome.state.phase is Phase.ROLLED_BACK
    assert outcome.state.confirmed and outcome.weights == ALL_BASELINE
    assert outcome.answered == Counter({"v1": 40})
    failing = [n for n in outcome.state.notes if "router failing" in n]
    assert failing and "attempts" in failing[0] and "(1 attempts)" not in failing[0]
