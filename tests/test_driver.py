"""The driver on real parts: a real HAProxy (weights read back through its runtime API and
traffic counted through it) and a real Prometheus on backfilled data, on the replay clock
of tests/support/replay.py.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from rollout.analysis.observation import Target
from rollout.analysis.prometheus import PrometheusSource
from rollout.driver import Driver, EvidenceSettings, abort_from_spec, run_from_spec
from rollout.exit_codes import ExitCode
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights
from rollout.routers.haproxy import HAProxyRouter
from rollout.spec import Policy, PrometheusConfig, RolloutSpec
from rollout.state import LocalFileStore, LocalQueryLog, LocalStateStore, Phase, RolloutState
from tests.support.backfill import BackfilledPrometheus, backfilled_prometheus, past_end
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.replay import POLICY, ReplayClock, Stack, answered_by, make_spec
from tests.support.scenarios import BASELINE, CANDIDATE
from tests.support.synthetic import SyntheticModel, VersionProfile, synthesize

W20 = Weights.candidate_share(20)
W50 = Weights.candidate_share(50)


def run(
    model: str,
    stack: Stack,
    prometheus: BackfilledPrometheus,
    tmp_path: Path,
    clock: ReplayClock | None = None,
) -> tuple[ExitCode, RolloutState, dict[str, object]]:
    clock = clock or ReplayClock(prometheus.dataset.start + 120)
    code = run_from_spec(
        make_spec(model, stack.haproxy, prometheus.url),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=tmp_path / "report",
        console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
        clock=clock,
    )
    state = LocalFileStore(tmp_path / "state" / f"default-{model}.json").load()
    assert state is not None
    report_path = tmp_path / "report" / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return code, state, report


# ---------------------------------------------------------------------------- outcomes


def test_a_healthy_candidate_is_promoted_step_by_step(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, state, report = run("gate-same", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PROMOTED and state.phase is Phase.PROMOTED
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == ALL_CANDIDATE
    assert answered_by(stack.haproxy) == Counter({CANDIDATE: 40})
    assert [c.weights for c in state.weight_changes] == [W20, W50, ALL_CANDIDATE]
    assert report["decision"] == "promoted"
    # Every query each look ran is in the report (the state keeps only the numbers).
    observations = report["observations"]
    assert isinstance(observations, list) and len(observations) == len(state.history)
    assert all(o["queries"] for o in observations)
    assert not any(look.queries for look in state.history)
    looks = [(o.start, o.end) for o in state.history]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(looks))  # contiguous
    assert "P95" in (tmp_path / "console.txt").read_text()


def test_custom_queries_see_the_analysis_window_from_the_rollouts_start(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    """analysis.window 5m at 1m looks: the counts stay each look's own (contiguous 60 s),
    the custom query's range grows with the rollout to 5m and stays there."""
    document = POLICY.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["analysis"]["window"] = 300
    document["customMetrics"] = [
        {
            "name": "served",
            "query": "sum(increase(inference_requests_total{version_selector}[{window}]))",
            "maxRelativeChange": 10,
        }
    ]
    policy = Policy.model_validate(document)
    clock = ReplayClock(synthetic_prometheus.dataset.start + 120)
    code = run_from_spec(
        make_spec("gate-same", stack.haproxy, synthetic_prometheus.url),
        policy,
        state_dir=tmp_path / "state",
        report_dir=None,
        console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
        clock=clock,
    )
    state = LocalFileStore(tmp_path / "state" / "default-gate-same.json").load()
    assert state is not None and state.started_at is not None
    assert code is ExitCode.PROMOTED, state.reason
    assert len(state.history) >= 6
    # The state keeps each look's numbers; the query log beside it, the PromQL it ran.
    logged = LocalQueryLog(tmp_path / "state").read("default-gate-same")
    for look in state.history:
        assert look.end - look.start == 60  # the counts: this look alone
        assert not look.queries
        queries = logged[(look.start, look.end)]
        (query, *_) = [q.promql for q in queries if q.signal == "custom:served"]
        seen = min(300, round(look.end - state.started_at))
        assert f"[{seen}s]" in query, (look.start - state.started_at, query)
        assert all(c.baseline and c.candidate for c in look.custom)
    last = state.history[-1]
    assert "[300s]" in logged[(last.start, last.end)][2].promql


def test_a_candidate_with_more_errors_is_rolled_back_with_all_traffic_on_the_baseline(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, state, report = run("gate-errors", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.ROLLED_BACK and state.phase is Phase.ROLLED_BACK
    assert answered_by(stack.haproxy) == Counter({BASELINE: 40})
    assert state.weight_changes[-1].weights == ALL_BASELINE
    assert report["decision"] == "rolled_back" and "error" in str(report["reason"]).lower()


def test_a_candidate_without_series_pauses_at_its_first_step(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, state, report = run("gate-nocandidate", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PAUSED and state.phase is Phase.PAUSED
    assert state.step == 0 and state.desired == W20
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == W20
    assert report["decision"] == "paused"


def abort(
    model: str, stack: Stack, prometheus: BackfilledPrometheus, tmp_path: Path
) -> tuple[ExitCode, RolloutState | None, str]:
    """`rollout abort` of the rollout `run` keeps in tmp_path; its code, state and output."""
    console = tmp_path / "abort.txt"
    code = abort_from_spec(
        make_spec(model, stack.haproxy, prometheus.url),
        POLICY,
        reason="operator: v2 needs more work",
        state_dir=tmp_path / "state",
        report_dir=tmp_path / "report",
        console=Console(file=console.open("a"), width=200),
    )
    state = LocalFileStore(tmp_path / "state" / f"default-{model}.json").load()
    return code, state, console.read_text()


def test_aborting_a_paused_rollout_puts_all_traffic_on_the_baseline_and_reports_it(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, _, _ = run("gate-nocandidate", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PAUSED and answered_by(stack.haproxy)[CANDIDATE] > 0
    code, state, _ = abort("gate-nocandidate", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PROMOTED  # 0: the abort is done
    assert state is not None and state.phase is Phase.ABORTED
    assert answered_by(stack.haproxy) == Counter({BASELINE: 40})
    assert state.weight_changes[-1].weights == ALL_BASELINE
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["decision"] == "aborted"
    assert report["reason"] == "operator: v2 needs more work"


def test_abort_refuses_without_a_saved_rollout_or_after_a_promotion(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, state, output = abort("gate-same", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.BAD_INPUT and state is None and "nothing to abort" in output
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == ALL_BASELINE

    assert run("gate-same", stack, synthetic_prometheus, tmp_path)[0] is ExitCode.PROMOTED
    code, state, output = abort("gate-same", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.BAD_INPUT and "already promoted" in output
    assert state is not None and state.phase is Phase.PROMOTED
    assert answered_by(stack.haproxy) == Counter({CANDIDATE: 40})


def test_an_unreachable_router_at_start_exits_4_and_saves_nothing(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    stack.haproxy.stop()
    code = run_from_spec(
        make_spec("gate-same", stack.haproxy, synthetic_prometheus.url),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=None,
        console=Console(file=(tmp_path / "console.txt").open("w")),
        clock=ReplayClock(synthetic_prometheus.dataset.start + 120),
    )
    assert code is ExitCode.INFRASTRUCTURE
    assert not (tmp_path / "state" / "default-gate-same.json").exists()


# ---------------------------------------------------------------------------- faults


def test_haproxy_restarted_mid_rollout_has_its_weights_restored(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    start = synthetic_prometheus.dataset.start + 120

    def restart() -> None:
        stack.haproxy.restart()  # back to 100/0

    clock = ReplayClock(start, at={start + 90: restart})
    code, state, _ = run("gate-same", stack, synthetic_prometheus, tmp_path, clock)
    assert code is ExitCode.PROMOTED
    assert any("drift" in note for note in state.notes)
    assert [c.weights for c in state.weight_changes] == [W20, W20, W50, ALL_CANDIDATE]


class Crash(BaseException):
    """The process dies: nothing after this line runs, nothing is cleaned up."""


@dataclass
class CrashAfterSetting:
    """The real HAProxy router; the process 'dies' right after HAProxy applies `weights`."""

    real: HAProxyRouter
    weights: Weights

    def get_weights(self) -> Weights:
        return self.real.get_weights()

    def set_weights(self, weights: Weights) -> None:
        self.real.set_weights(weights)
        if weights == self.weights:
            raise Crash()

    def verify(self, weights: Weights) -> bool | None:
        return self.real.verify(weights)


def test_a_crash_between_a_weight_change_and_the_state_write_resumes_the_same_step(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    config = stack.haproxy.router_config()
    store = LocalFileStore(tmp_path / "default-gate-same.json")
    clock = ReplayClock(synthetic_prometheus.dataset.start + 120)
    source = PrometheusSource(PrometheusConfig(url=synthetic_prometheus.url), POLICY.metrics)

    def driver(router: HAProxyRouter | CrashAfterSetting) -> Driver:
        return Driver(
            name="gate-same",
            router=router,
            source=source,
            store=LocalStateStore(tmp_path),
            policy=POLICY,
            target=Target("gate-same", BASELINE, CANDIDATE),
            evidence=EvidenceSettings(trace_link_template="http://t/{trace_id}"),
            clock=clock,
            console=Console(file=(tmp_path / "console.txt").open("a")),
        )

    try:
        with pytest.raises(Crash):
            driver(CrashAfterSetting(HAProxyRouter(config), W50)).run()
        saved = store.load()
        assert saved is not None and saved.step == 1 and saved.desired == W50
        assert not saved.confirmed  # HAProxy has 50/50, the state has not heard yet
        assert [c.weights for c in saved.weight_changes] == [W20]
        looks = len(saved.history)

        assert driver(HAProxyRouter(config)).run() is ExitCode.PROMOTED
        done = store.load()
        assert done is not None and done.phase is Phase.PROMOTED
        assert [c.weights for c in done.weight_changes] == [W20, W50, ALL_CANDIDATE]
        assert done.history[:looks] == saved.history  # nothing repeated, nothing lost
        assert any("resumed at step 2" in note for note in done.notes)
    finally:
        source.close()


def test_a_finished_rollout_run_again_reports_its_outcome_and_moves_nothing(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, state, _ = run("gate-errors", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.ROLLED_BACK
    router = HAProxyRouter(stack.haproxy.router_config())
    router.set_weights(W50)  # someone moved traffic since; a finished rollout leaves it be
    again, after, _ = run("gate-errors", stack, synthetic_prometheus, tmp_path)
    assert again is ExitCode.ROLLED_BACK
    assert router.get_weights() == W50
    assert after.weight_changes == state.weight_changes


# ---------------------------------------------------------------------------- Prometheus outage


@pytest.fixture(scope="module")
def own_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackfilledPrometheus]:
    """A Prometheus these tests may stop and start (the shared one serves everyone)."""
    model = SyntheticModel(
        model="outage",
        baseline=VersionProfile(BASELINE),
        candidate=VersionProfile(CANDIDATE),
        seed=41,
    )
    dataset = synthesize([model], end=past_end(), minutes=20.0)
    running = backfilled_prometheus(dataset, tmp_path_factory.mktemp("own-prometheus"))
    try:
        yield running
    finally:
        running.stop()


def test_a_short_prometheus_outage_holds_the_weights_and_the_analysis_goes_on(
    stack: Stack, own_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    start = own_prometheus.dataset.start + 120
    router = HAProxyRouter(stack.haproxy.router_config())
    seen: list[Weights] = []

    def down() -> None:
        own_prometheus.prometheus.stop()
        seen.append(router.get_weights())

    def up() -> None:
        seen.append(router.get_weights())
        own_prometheus.prometheus.start()

    clock = ReplayClock(start, at={start + 100: down, start + 160: up})
    code, state, report = run("outage", stack, own_prometheus, tmp_path, clock)
    assert code is ExitCode.PROMOTED
    assert seen == [W20, W20]  # held while Prometheus was away
    assert any("Prometheus failing" in note for note in state.notes)
    assert "waiting for Prometheus" in (tmp_path / "console.txt").read_text()
    assert report["decision"] == "promoted"


def test_prometheus_down_past_the_policys_limit_rolls_back(
    stack: Stack, own_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    start = own_prometheus.dataset.start + 120
    clock = ReplayClock(start, at={start + 100: own_prometheus.prometheus.stop})
    try:
        code, state, report = run("outage", stack, own_prometheus, tmp_path, clock)
    finally:
        own_prometheus.prometheus.start()
    assert code is ExitCode.ROLLED_BACK
    assert "Prometheus" in state.reason and "limit" in state.reason
    assert answered_by(stack.haproxy) == Counter({BASELINE: 40})
    assert report["decision"] == "rolled_back"


def test_sigterm_leaves_traffic_as_it_is_and_the_next_run_resumes(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    start = synthetic_prometheus.dataset.start + 120
    clock = ReplayClock(start, at={start + 100: lambda: os.kill(os.getpid(), signal.SIGTERM)})
    code, state, _ = run("gate-same", stack, synthetic_prometheus, tmp_path, clock)
    assert code is ExitCode.PAUSED  # interrupted, not decided
    assert state.phase is Phase.PROGRESSING and state.step == 0
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == W20
    assert "run the same command again" in (tmp_path / "console.txt").read_text()

    code, state, _ = run("gate-same", stack, synthetic_prometheus, tmp_path, clock)
    assert code is ExitCode.PROMOTED
    assert [c.weights for c in state.weight_changes] == [W20, W50, ALL_CANDIDATE]


def test_a_second_run_of_a_live_rollout_is_refused(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    with LocalFileStore(tmp_path / "state" / "default-gate-same.json").lock():
        code = run_from_spec(
            make_spec("gate-same", stack.haproxy, synthetic_prometheus.url),
            POLICY,
            state_dir=tmp_path / "state",
            report_dir=None,
            console=Console(file=(tmp_path / "console.txt").open("w"), width=200),
            clock=ReplayClock(synthetic_prometheus.dataset.start + 120),
        )
    assert code is ExitCode.BAD_INPUT
    assert f"pid {os.getpid()}" in (tmp_path / "console.txt").read_text()
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == ALL_BASELINE


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from rich.console import Console
from rollout.driver import run_from_spec
from rollout.spec import Policy, RolloutSpec

spec = RolloutSpec.model_validate_json(Path(sys.argv[1]).read_text())
policy = Policy.model_validate_json(Path(sys.argv[2]).read_text())
start, kill_at = float(sys.argv[3]), float(sys.argv[4])

class Clock:
    time = start
    def now(self):
        return self.time
    def sleep(self, seconds):
        self.time += seconds
        if self.time >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

run_from_spec(spec, policy, state_dir=Path(sys.argv[5]), report_dir=None,
              console=Console(), clock=Clock())
"""


@pytest.mark.parametrize(("killed_after", "at_step"), [(100.0, 0), (250.0, 1)])
def test_kill_9_mid_step_resumes_at_the_same_step_with_the_same_weights(
    stack: Stack,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    killed_after: float,
    at_step: int,
) -> None:
    start = synthetic_prometheus.dataset.start + 120
    spec_file, policy_file = tmp_path / "spec.json", tmp_path / "policy.json"
    spec_file.write_text(
        make_spec("gate-same", stack.haproxy, synthetic_prometheus.url).model_dump_json(
            by_alias=True
        )
    )
    policy_file.write_text(POLICY.model_dump_json(by_alias=True))
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_RUN,
            *(str(a) for a in (spec_file, policy_file, start, start + killed_after)),
            str(tmp_path / "state"),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    saved = LocalFileStore(tmp_path / "state" / "default-gate-same.json").load()
    assert saved is not None and saved.phase is Phase.PROGRESSING and saved.step == at_step
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == saved.desired

    code, state, _ = run(
        "gate-same", stack, synthetic_prometheus, tmp_path, ReplayClock(start + killed_after)
    )
    assert code is ExitCode.PROMOTED  # as the uninterrupted run on the same data
    assert [c.weights for c in state.weight_changes] == [W20, W50, ALL_CANDIDATE]
    assert state.history[: len(saved.history)] == saved.history


# ---------------------------------------------------------------------------- a hanging Prometheus


@dataclass
class WallReplayClock(ReplayClock):
    """Replay time plus the real time spent between sleeps: a query that hangs takes time."""

    def __post_init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return self.time + (time.monotonic() - self._origin)


def test_an_outage_starts_when_the_first_hanging_attempt_starts(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    """Prometheus hangs (a real server that holds every query): each look fails only after
    its timeouts and retries (3 x 3 s), longer than the policy's 5 s outage limit. The first
    failure is already past the limit: rolled back, though Prometheus answers again at once."""
    policy = Policy.model_validate(
        {**POLICY.model_dump(by_alias=True), "outage": {"maxDuration": "5s"}}
    )
    start = synthetic_prometheus.dataset.start + 120
    with FaultProxy(synthetic_prometheus.url) as proxy:
        document = make_spec("gate-same", stack.haproxy, proxy.url).model_dump(by_alias=True)
        document["spec"]["prometheus"]["timeout"] = 3.0
        spec = RolloutSpec.model_validate(document)

        def hang() -> None:
            proxy.switch(Fault.HOLD)

        clock = WallReplayClock(start, at={start + 100: hang})
        original_sleep = clock.sleep

        def sleep(seconds: float) -> None:
            if proxy.fault is Fault.HOLD and proxy.arrived.is_set():
                proxy.switch(Fault.NONE)  # it answers again before the next try
            original_sleep(seconds)

        clock.sleep = sleep  # type: ignore[method-assign]
        code = run_from_spec(
            spec,
            policy,
            state_dir=tmp_path / "state",
            report_dir=tmp_path / "report",
            console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
            clock=clock,
        )
    state = LocalFileStore(tmp_path / "state" / "default-gate-same.json").load()
    assert state is not None, (tmp_path / "console.txt").read_text()
    assert code is ExitCode.ROLLED_BACK, (tmp_path / "console.txt").read_text()
    assert "Prometheus" in state.reason and "limit" in state.reason
    assert "failing for 0s" not in (tmp_path / "console.txt").read_text()
    assert answered_by(stack.haproxy) == Counter({BASELINE: 40})


# ---------------------------------------------------------------------------- messages


def test_without_a_report_dir_no_report_is_said_to_be_written(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    console = tmp_path / "console.txt"
    code = run_from_spec(
        make_spec("gate-errors", stack.haproxy, synthetic_prometheus.url),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=None,
        console=Console(file=console.open("a"), width=200),
        clock=ReplayClock(synthetic_prometheus.dataset.start + 120),
    )
    assert code is ExitCode.ROLLED_BACK
    output = console.read_text()
    assert "report written" not in output and "report (json)" not in output
    assert "no report files written" in output and "--report-dir" in output
    assert "(exit 1)" in output
    # A look's line says which numbers are that look's and which are over all looks so far.
    look = next(line for line in output.splitlines() if line.startswith("look 1 "))
    assert "P95 this look" in look and "(all looks" in look and "errors this look" in look


def test_abort_says_the_exit_code_it_exits_with_and_an_aborted_rollout_cannot_be_aborted_again(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    assert run("gate-nocandidate", stack, synthetic_prometheus, tmp_path)[0] is ExitCode.PAUSED
    code, state, output = abort("gate-nocandidate", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PROMOTED and state is not None and state.phase is Phase.ABORTED
    assert "(exit 0)" in output and "(exit 1)" not in output

    (tmp_path / "abort.txt").unlink()
    code, state, output = abort("gate-nocandidate", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.BAD_INPUT, output
    assert "already aborted" in output and "nothing to abort" in output


def test_a_finished_rollback_cannot_be_aborted(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    assert run("gate-errors", stack, synthetic_prometheus, tmp_path)[0] is ExitCode.ROLLED_BACK
    code, state, output = abort("gate-errors", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.BAD_INPUT and "already rolled back" in output
    assert state is not None and state.phase is Phase.ROLLED_BACK
