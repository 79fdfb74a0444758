"""Rollout state: a full JSON round trip, atomic saves under kill -9, and the run lock."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rollout.analysis.judge import judge_next
from rollout.analysis.observation import (
    Bucket,
    CustomValue,
    Observation,
    QueryRecord,
    Target,
    VersionCounts,
)
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.evidence.report import WeightChange
from rollout.routers.base import Weights
from rollout.spec import Policy
from rollout.state import (
    LocalFileStore,
    Outage,
    Phase,
    RolloutState,
    StateError,
    StateLockedError,
    state_from_json,
    state_to_json,
)

T0 = 1_700_000_000.0
REPO = Path(__file__).resolve().parent.parent


def full_state(looks: int = 2) -> RolloutState:
    buckets = (Bucket(0.1, 700), Bucket(0.5, 790), Bucket(math.inf, 800))
    observation = Observation(
        start=T0,
        end=T0 + 10,
        baseline=VersionCounts(requests=800, errors=4, buckets=buckets),
        candidate=VersionCounts(requests=None, errors=None, buckets=None),
        custom=(CustomValue("gpu_seconds", 0.25, None),),
        queries=(
            QueryRecord("requests", 'sum by (model_version) (increase(x{a="b"}[10s]))', T0, 1),
        ),
        problems=("requests: no series for the candidate",),
    )
    comparison = Comparison(
        metric="latency_p95",
        verdict=Verdict.INCONCLUSIVE,
        baseline=0.2,
        candidate=math.nan,
        effect=math.inf,
        effect_name="p95_ratio",
        interval=(0.8, 1.6),
        confidence=0.99,
        test="mixture SPRT",
        e_value=1.5,
        baseline_n=800,
        candidate_n=0,
        details=(("tail_fraction", 0.05), ("bootstrap_low", -math.inf)),
    )
    return RolloutState(
        name="iris",
        target=Target("iris", "2.3.1", "2.4.0"),
        policy_digest="abc",
        phase=Phase.PROGRESSING,
        step=1,
        desired=Weights(50, 50),
        desired_reason="step 2/2",
        confirmed=True,
        updated_at=T0 + 30,
        started_at=T0,
        step_started_at=T0 + 20,
        last_look_end=T0 + 10,
        history=(observation,) * looks,
        judgement=Judgement(Verdict.INCONCLUSIVE, (comparison,), "latency_p95", "too little"),
        source_outage=Outage(since=T0 + 12, attempts=3, reason="timeout", retry_at=T0 + 19),
        weight_changes=(WeightChange(T0, Weights(80, 20), "step 1/2"),),
        notes=("2023-11-14T22:13:20Z drift repaired",),
        message="holding",
    )


def test_a_full_state_survives_a_json_round_trip() -> None:
    state = full_state()
    text = state_to_json(state)
    json.loads(text, parse_constant=pytest.fail)  # strict JSON: no NaN or Infinity literals
    back = state_from_json(text)
    assert back.history[0].baseline.buckets == state.history[0].baseline.buckets
    assert back.judgement is not None and math.isnan(back.judgement.comparisons[0].candidate or 0)
    restored = back.judgement.comparisons[0]
    original = state.judgement.comparisons[0]  # type: ignore[union-attr]
    assert restored.details == original.details and restored.effect == math.inf
    # NaN != NaN, so compare everything else field by field through JSON again.
    assert state_to_json(back) == text
    assert back.phase is Phase.PROGRESSING and back.desired == Weights(50, 50)
    assert isinstance(back.history, tuple) and isinstance(back.weight_changes[0], WeightChange)


def test_a_file_of_another_schema_or_garbage_is_a_clear_error(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "r.json")
    store.path.write_text('{"schema": 99, "state": {}}')
    with pytest.raises(StateError, match="schema 99"):
        store.load()
    store.path.write_text('{"schema": 1, "state": {"name": "x"}}')
    with pytest.raises(StateError, match="invalid state"):
        store.load()
    store.path.write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        store.load()


def test_load_of_a_missing_file_is_none_and_save_then_load_round_trips(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "deeper" / "default-iris.json")
    assert store.load() is None
    store.save(full_state())
    assert store.load() == state_from_json(state_to_json(full_state()))
    assert [p.name for p in store.path.parent.iterdir()] == ["default-iris.json"]


_SAVER = """
import sys
from pathlib import Path
from rollout.state import LocalFileStore, state_from_json
store = LocalFileStore(Path(sys.argv[1]))
small, large = (state_from_json(Path(p).read_text()) for p in sys.argv[2:4])
print("saving", flush=True)
while True:
    store.save(large)
    store.save(small)
"""


def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_state(tmp_path: Path) -> None:
    path = tmp_path / "default-iris.json"
    LocalFileStore(path).save(full_state(1))
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text(state_to_json(full_state(1)))
    large.write_text(state_to_json(full_state(400)))
    expected = {small.read_text(), large.read_text()}
    for delay in (0.05, 0.13, 0.21, 0.34, 0.55):
        saver = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path), str(small), str(large)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert saver.stdout is not None and saver.stdout.readline() == "saving\n"
            time.sleep(delay)  # kill it at a different point of its save loop each time
        finally:
            saver.send_signal(signal.SIGKILL)
            saver.wait()
        assert saver.returncode == -signal.SIGKILL
        assert path.read_text() in expected
        store = LocalFileStore(path)
        assert store.load() is not None
        with store.lock():  # the next holder clears what the killed save left behind
            assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


_HOLDER = """
import sys, time
from pathlib import Path
from rollout.state import LocalFileStore
with LocalFileStore(Path(sys.argv[1])).lock():
    print("locked", flush=True)
    time.sleep(600)
"""


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def test_a_second_run_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    path = tmp_path / "default-iris.json"
    holder = _hold_lock(path)
    try:
        with (
            pytest.raises(StateLockedError, match=f"pid {holder.pid}"),
            LocalFileStore(path).lock(),
        ):
            pytest.fail("the lock was taken twice")
    finally:
        holder.terminate()
        holder.wait()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "default-iris.json"
    holder = _hold_lock(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    store = LocalFileStore(path)
    with store.lock():
        assert store.lock_path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(StateLockedError):  # and it is exclusive again
            _hold_lock_in_this_process(store)


def _hold_lock_in_this_process(store: LocalFileStore) -> None:
    # flock is per open file description: a second open in the same process conflicts too.
    with LocalFileStore(store.path).lock():
        pytest.fail("the lock was taken twice")


def test_the_judges_running_totals_survive_a_round_trip_and_judge_alike() -> None:
    """A resumed rollout judges its next look from the saved Analysis exactly as if it had
    never stopped."""
    policy = Policy.model_validate({"steps": [{"weight": 50, "hold": "1m"}]})
    les = (0.1, 0.12, 0.15, math.inf)
    look = Observation(
        start=T0,
        end=T0 + 10,
        baseline=VersionCounts(900, 9, tuple(map(Bucket, les, (800, 850, 890, 900)))),
        candidate=VersionCounts(100, 3, tuple(map(Bucket, les, (80, 90, 97, 100)))),
    )
    analysis, _ = judge_next(None, (look,), policy)
    state = replace(full_state(), analysis=analysis)
    back = state_from_json(state_to_json(state))
    assert back.analysis == analysis
    # NaN (a window not known yet) != NaN: compare what a person and the engine read
    again, resumed = (
        judge_next(back.analysis, (look, look), policy),
        judge_next(analysis, (look, look), policy),
    )
    assert repr(again) == repr(resumed)
