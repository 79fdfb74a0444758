"""`kill -9` of a real `rollout run` at several points, then the same command again: it
resumes at the same step with the same weights, repeats no step, ends as an uninterrupted
run does, and the state file is never torn. (tests/test_driver.py proves the same points
in-process; these go through the CLI, a real process and a real kill.)"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout.routers.base import ALL_CANDIDATE
from rollout.state import Phase
from tests.support.cli_faults import (
    W20,
    W50,
    CliRun,
    FaultStack,
    Outcome,
    crash_after_weight_change,
    crash_during_analysis,
    crash_during_hold,
    kill9,
    uninterrupted,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def reference(fault_stack_once: FaultStack, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The same rollout without a fault, on the same stack."""
    fault_stack_once.reset()
    return uninterrupted(fault_stack_once, tmp_path_factory.mktemp("reference"))


def _resumed_as_uninterrupted(outcome: Outcome, reference: Outcome) -> None:
    assert reference.code == 0 and reference.changes == [W20, W50, ALL_CANDIDATE]
    assert outcome.killed_code == -signal.SIGKILL
    assert outcome.code == reference.code, outcome.output
    assert outcome.state.phase is reference.state.phase is Phase.PROMOTED
    assert outcome.changes == reference.changes  # every step once, none repeated
    assert outcome.weights == ALL_CANDIDATE
    assert outcome.answered == Counter({"v2": 40})
    saved = outcome.at_fault
    assert saved is not None and saved.phase is Phase.PROGRESSING
    assert outcome.state.history[: len(saved.history)] == saved.history  # nothing lost
    assert f"resumed at step {saved.step + 1} with weights {saved.desired}" in "".join(
        outcome.state.notes
    )
    assert outcome.state_reads > 20  # the file was read all along, and always parsed


@pytest.mark.parametrize(
    "crash",
    [crash_during_hold, crash_during_analysis],
    ids=["during-a-hold", "during-an-analysis"],
)
def test_kill_9_during_step_1_resumes_step_1_with_its_weights(
    fault_stack: FaultStack,
    reference: Outcome,
    tmp_path: Path,
    crash: Callable[[FaultStack, Path], Outcome],
) -> None:
    outcome = crash(fault_stack, tmp_path)
    saved = outcome.at_fault
    assert saved is not None and saved.step == 0 and saved.desired == W20 and saved.confirmed
    _resumed_as_uninterrupted(outcome, reference)
    assert not list((tmp_path / "state").glob("*.tmp"))


def test_kill_9_right_after_a_weight_change_resumes_with_the_new_weights_once(
    fault_stack: FaultStack, reference: Outcome, tmp_path: Path
) -> None:
    outcome = crash_after_weight_change(fault_stack, tmp_path)
    saved = outcome.at_fault
    # HAProxy took 50/50; the run died before hearing it back: the state holds the intent.
    assert saved is not None and saved.step == 1 and saved.desired == W50
    assert not saved.confirmed and [c.weights for c in saved.weight_changes] == [W20]
    _resumed_as_uninterrupted(outcome, reference)


def test_a_second_run_while_the_first_lives_is_refused_and_moves_nothing(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    first = CliRun(fault_stack, tmp_path, "locked")
    process = first.start()
    try:
        first.wait_for(process, lambda s: s.confirmed and s.step == 0)
        second = CliRun(fault_stack, tmp_path, "locked", label="second")
        code = second.run(timeout=60)
        assert code == 3
        assert f"pid {process.pid}" in " ".join(second.output().split())
        assert fault_stack.router.get_weights() == W20
    finally:
        kill9(process)
    # The dead run's lock is stale: the same command takes it over and finishes.
    again = CliRun(fault_stack, tmp_path, "locked", label="again")
    assert again.run() == 0, again.output()
    assert again.final_state().phase is Phase.PROMOTED
