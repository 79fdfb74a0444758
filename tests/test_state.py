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

import numpy as np
import pytest

from rollout.analysis.accumulate import Analysis
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
from rollout.engine import numbers_only
from rollout.evidence.report import WeightChange
from rollout.instrument.metrics import LATENCY_BUCKETS
from rollout.routers.base import Weights
from rollout.spec import Policy
from rollout.state import (
    LocalFileStore,
    LocalStateStore,
    Outage,
    Phase,
    RolloutState,
    StateConflict,
    StateError,
    StateLockedError,
    _encode,
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
    assert store.save(full_state(), None) == "1"
    assert store.load() == state_from_json(state_to_json(full_state()))
    assert [p.name for p in store.path.parent.iterdir()] == ["default-iris.json"]


_SAVER = """
import sys
from pathlib import Path
from rollout.state import LocalFileStore, state_from_json
store = LocalFileStore(Path(sys.argv[1]))
small, large = (state_from_json(Path(p).read_text()) for p in sys.argv[2:4])
loaded = store.load_versioned()
assert loaded is not None
version = loaded[1]
print("saving", flush=True)
while True:
    version = store.save(large, version)
    version = store.save(small, version)
"""


def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_state(tmp_path: Path) -> None:
    path = tmp_path / "default-iris.json"
    LocalFileStore(path).save(full_state(1), None)
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
        assert state_to_json(state_from_json(path.read_text())) in expected  # whole, either
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


JUDGED_POLICY = Policy.model_validate({"steps": [{"weight": 50, "hold": "1m"}]})


def judged_look() -> tuple[Observation, Analysis | None]:
    """A look with errors and a histogram, and the judge's running totals after it."""
    les = (0.1, 0.12, 0.15, math.inf)
    look = Observation(
        start=T0,
        end=T0 + 10,
        baseline=VersionCounts(900, 9, tuple(map(Bucket, les, (800, 850, 890, 900)))),
        candidate=VersionCounts(100, 3, tuple(map(Bucket, les, (80, 90, 97, 100)))),
    )
    return look, judge_next(None, (look,), JUDGED_POLICY)[0]


def test_the_judges_running_totals_survive_a_round_trip_and_judge_alike() -> None:
    """A resumed rollout judges its next look from the saved Analysis exactly as if it had
    never stopped."""
    look, analysis = judged_look()
    state = replace(full_state(), analysis=analysis)
    back = state_from_json(state_to_json(state))
    assert back.analysis == analysis
    # NaN (a window not known yet) != NaN: compare what a person and the engine read
    again, resumed = (
        judge_next(back.analysis, (look, look), JUDGED_POLICY),
        judge_next(analysis, (look, look), JUDGED_POLICY),
    )
    assert repr(again) == repr(resumed)


def test_the_running_totals_are_saved_as_exact_binary_rows_and_schema_2_still_reads() -> None:
    """The judge's log-likelihood ratios go out as binary doubles (bit for bit, signs of
    zero and infinities included); a file of the previous schema (decimal lists) resumes."""
    _, analysis = judged_look()
    assert analysis is not None and analysis.latency_llr and analysis.errors_up
    odd = ((-0.0, 5e-324, -math.inf), (1 / 3, 1e308, math.inf))
    state = replace(full_state(), analysis=replace(analysis, errors_down=odd))
    document = json.loads(state_to_json(state))
    saved = document["state"]["analysis"]
    assert document["schema"] == 3
    assert all(saved[k].startswith(("f64x",)) for k in ("latency_llr", "errors_up", "errors_down"))
    back = state_from_json(state_to_json(state))
    assert back.analysis is not None and back.analysis.latency_llr == analysis.latency_llr
    assert repr(back.analysis.errors_down) == repr(odd)  # -0.0 stays -0.0

    # What the previous version wrote: the same numbers as JSON lists, "+Inf" as a string.
    def decimal(rows: tuple[tuple[float, ...], ...]) -> list[list[object]]:
        return [[x if math.isfinite(x) else ("+Inf" if x > 0 else "-Inf") for x in r] for r in rows]

    for name in ("latency_llr", "errors_up", "errors_down"):
        saved[name] = decimal(getattr(state.analysis, name))
    document["schema"] = 2
    old = state_from_json(json.dumps(document))
    assert old.analysis is not None
    assert repr(old.analysis.errors_down) == repr(odd)
    assert old.analysis.latency_llr == analysis.latency_llr

    broken = json.loads(state_to_json(state))
    broken["state"]["analysis"]["errors_up"] = "f64x3:AAAA"  # 3 bytes: not whole doubles
    with pytest.raises(StateError, match="invalid state"):
        state_from_json(json.dumps(broken))


# ---------------------------------------------------------------------------- keyed, versioned


def test_a_keyed_store_counts_versions_and_refuses_a_stale_save(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    assert store.load("default-iris") is None
    first = store.save("default-iris", full_state(1), None)
    loaded = store.load("default-iris")
    assert loaded is not None and loaded[1] == first
    second = store.save("default-iris", replace(full_state(1), step=0), first)
    assert second != first
    path = tmp_path / "state" / "default-iris.json"
    before = path.read_bytes(), os.stat(path).st_mtime_ns
    for stale in (first, None):
        with pytest.raises(StateConflict, match="another writer"):
            store.save("default-iris", replace(full_state(1), step=2), stale)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before  # nothing changed
    # Another process (another store object) saved since: this one sees it, by version.
    LocalStateStore(tmp_path / "state").save("default-iris", full_state(2), second)
    with pytest.raises(StateConflict):
        store.save("default-iris", full_state(3), second)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["default-iris.json"]


def test_a_save_without_a_change_does_not_write(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    version = store.save("default-iris", full_state(), None)
    path = tmp_path / "default-iris.json"
    stamp = os.stat(path).st_mtime_ns, os.stat(path).st_ino
    time.sleep(0.01)
    again = store.save("default-iris", state_from_json(state_to_json(full_state())), version)
    assert again == version
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == stamp
    fresh = LocalStateStore(tmp_path)  # from the file, not from memory
    assert fresh.save("default-iris", full_state(), version) == version
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == stamp


def test_only_a_save_that_adds_looks_and_changes_nothing_acted_on_skips_the_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counted(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted)
    store = LocalStateStore(tmp_path)

    def fsyncs(state: RolloutState, version: str | None) -> tuple[int, str]:
        synced.clear()
        saved = store.save("default-iris", state, version)
        assert store.load("default-iris") == (state, saved)  # written either way
        return len(synced), saved

    first = full_state(looks=1)
    count, version = fsyncs(first, None)
    assert count == 2  # the file and its directory entry
    looked = replace(first, history=full_state(looks=2).history, message="looked again")
    count, version = fsyncs(looked, version)
    assert count == 0  # a look's numbers: a power failure may take them back, nothing else
    next_step = replace(looked, history=full_state(looks=3).history, step=2)
    count, version = fsyncs(next_step, version)
    assert count == 2  # the look moved the rollout on: on disk before the router is touched
    message_only = replace(next_step, message="holding 10s more")
    count, version = fsyncs(message_only, version)
    assert count == 2  # no new look: kept as before
    store = LocalStateStore(tmp_path)  # another process: judges against what the file holds
    count, _ = fsyncs(replace(message_only, history=full_state(looks=4).history), version)
    assert count == 0


def test_a_schema_1_file_is_still_read(tmp_path: Path) -> None:
    """A rollout saved by the previous version (looks as objects, no version) resumes."""
    state = full_state()
    body = json.loads(state_to_json(state))["state"]
    body["history"] = [_encode(look) for look in state.history]
    path = tmp_path / "default-iris.json"
    path.write_text(json.dumps({"schema": 1, "state": body}))
    loaded = LocalStateStore(tmp_path).load("default-iris")
    assert loaded is not None and loaded[1] == "0"
    assert state_to_json(loaded[0]) == state_to_json(state)


def test_packed_looks_are_exact() -> None:
    """Every count comes back as it went in: gaps, zeros, missing histograms, two layouts,
    a non-integer count, NaN and +Inf custom values."""
    les = (0.1, 0.2, 0.5, math.inf)

    def look(i: int, baseline: VersionCounts, candidate: VersionCounts) -> Observation:
        return Observation(T0 + 10 * i, T0 + 10 * (i + 1), baseline, candidate)

    looks = (
        look(0, VersionCounts(0, 0, tuple(Bucket(le, 0) for le in les)), VersionCounts(5, 1, None)),
        look(
            1,
            VersionCounts(9, None, tuple(map(Bucket, les, (0, 4, 4, 9)))),
            VersionCounts(None, None, tuple(map(Bucket, (0.3, math.inf), (1, 2)))),
        ),
        look(
            2,
            VersionCounts(3, 0, tuple(map(Bucket, les, (3, 2, 7, 7)))),  # not monotone: kept
            VersionCounts(4, 0, (Bucket(0.1, 1.5), Bucket(math.inf, 4))),  # type: ignore[arg-type]
        ),
        replace(
            look(3, VersionCounts(1, 0, ()), VersionCounts(1, 0, None)),
            custom=(CustomValue("x", math.inf, None),),
            problems=("latency: NaN dropped",),
        ),
    )
    state = replace(full_state(0), history=looks)
    back = state_from_json(state_to_json(state))
    assert back.history == looks
    assert [type(b.count) for b in back.history[1].baseline.buckets or ()] == [int] * 4


def test_a_save_packs_only_its_new_looks_into_the_bytes_a_fresh_pack_gives(
    tmp_path: Path,
) -> None:
    """Saving a rollout look after look (the engine appends to the same history) writes the
    same file as saving its final state once; a history that is not an extension is packed
    afresh."""
    store = LocalStateStore(tmp_path)
    grown: list[Observation] = []
    version = None
    for i in range(6):
        grown.append(
            Observation(
                T0 + 10 * i,
                T0 + 10 * (i + 1),
                VersionCounts(10 + i, i, (Bucket(0.1, 4), Bucket(math.inf, 10 + i))),
                VersionCounts(3, 0, None),
            )
        )
        version = store.save("default-iris", replace(full_state(0), history=tuple(grown)), version)
    packed_along = store.file("default-iris").path.read_text()
    fresh = LocalStateStore(tmp_path / "fresh")
    fresh.save("default-iris", replace(full_state(0), history=tuple(grown)), None)
    assert packed_along.replace('"version": 6', '"version": 1') == (
        fresh.file("default-iris").path.read_text()
    )
    other = (grown[0], grown[2])  # not an extension of what was packed
    version = store.save("default-iris", replace(full_state(0), history=other), version)
    loaded = store.load("default-iris")
    assert loaded is not None and loaded[0].history == other


def test_120_looks_on_the_kits_buckets_fit_in_64_kb() -> None:
    """The state of a 120-look rollout on the instrumentation kit's 64 buckets, judged look
    by look as the engine does, stays under 64 KB of JSON (a Kubernetes object must hold
    it): per look only numbers; the queries are in the query log, not here."""
    policy = Policy.model_validate({"steps": [{"weight": 20, "hold": "2h"}]})
    les = np.array([*LATENCY_BUCKETS, math.inf])
    rng = np.random.default_rng(7)

    def counts(n: int, median: float) -> VersionCounts:
        latencies = rng.lognormal(math.log(median), 0.5, n)
        cumulative = np.cumsum(np.bincount(np.searchsorted(les, latencies), minlength=les.size))
        errors = int(rng.binomial(n, 0.01))
        return VersionCounts(n, errors, tuple(map(Bucket, les.tolist(), cumulative.tolist())))

    looks: list[Observation] = []
    analysis = judgement = None
    for i in range(120):  # 100 requests/s, a 20% canary, 1-minute looks
        queries = tuple(
            QueryRecord(s, f'{s}_total{{model_name="fraud-detector"}}[360s]', T0 + 60 * i, 114)
            for s in ("requests", "latency")
        )
        look = Observation(
            T0 + 60 * i, T0 + 60 * (i + 1), counts(4800, 0.1), counts(1200, 0.11), queries=queries
        )
        analysis, judgement = judge_next(analysis, (*looks, look), policy)
        looks.append(numbers_only(look))
    state = replace(full_state(0), history=tuple(looks), analysis=analysis, judgement=judgement)
    size = len(state_to_json(state).encode())
    print(f"state of 120 looks on {les.size} buckets: {size} bytes")
    assert size <= 64 * 1024, size
    assert state_from_json(state_to_json(state)).history == state.history
    assert "fraud-detector" not in state_to_json(state)  # no query text in the state
