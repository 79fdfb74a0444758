"""The live panel: rendered from plain values, and shown by `rollout run` only on a terminal
(a run into a file or a pipe prints its plain lines), on the driver's bench."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.live import Live

from rollout.analysis.observation import Bucket, Observation, Target, VersionCounts
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.driver import run_from_spec
from rollout.exit_codes import ExitCode
from rollout.lifecycle import status
from rollout.live import LivePanel, rollout_panel
from rollout.routers.base import Weights
from rollout.state import LocalStateStore, Phase, RolloutState
from tests.support.backfill import BackfilledPrometheus
from tests.support.replay import POLICY, ReplayClock, Stack, make_spec

BOX = "╭"  # the panel's corner: only a terminal gets one


def counts(requests: int, errors: int, fast: int) -> VersionCounts:
    """`fast` requests under 100 ms, the rest under 200 ms."""
    buckets = (Bucket(0.1, fast), Bucket(0.2, requests), Bucket(math.inf, requests))
    return VersionCounts(requests, errors, buckets)


def comparison(
    metric: str, e_value: float, verdict: Verdict, interval: tuple[float, float]
) -> Comparison:
    return Comparison(
        metric=metric,
        verdict=verdict,
        baseline=0.095 if metric == "latency_p95" else 0.001,
        candidate=0.19 if metric == "latency_p95" else 0.002,
        effect=2.0,
        effect_name="p95_ratio" if metric == "latency_p95" else "error_rate_ratio",
        interval=interval,
        confidence=0.99,
        test="mixture SPRT",
        e_value=e_value,
        threshold=100.0,
    )


def state_at_step_two() -> RolloutState:
    looks = tuple(
        Observation(
            start=1000.0 + 60 * i,
            end=1060.0 + 60 * i,
            baseline=counts(1000, 1, 990),
            candidate=counts(500, 1, 100 + i),
        )
        for i in range(7)
    )
    judgement = Judgement(
        verdict=Verdict.NO_REGRESSION,
        comparisons=(
            comparison("latency_p95", 42.0, Verdict.NO_REGRESSION, (1.61, 2.4)),
            comparison("error_rate", 0.5, Verdict.NO_REGRESSION, (0.1, 9.0)),
        ),
        decided_by=None,
        reason="no regression shown yet",
    )
    state = RolloutState.new("fraud", Target("fraud-detector", "v1", "v2"), "d", 1000.0)
    return replace(
        state,
        phase=Phase.PROGRESSING,
        step=1,
        desired=Weights.candidate_share(50),
        confirmed=True,
        step_started_at=1300.0,
        last_look_end=1420.0,
        history=looks,
        judgement=judgement,
        message="step 2/2 (50/50): NO_REGRESSION_YET, holding 60s more",
    )


def render(state: RolloutState, **kwargs: object) -> str:
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(rollout_panel(state, **kwargs))  # type: ignore[arg-type]
    return console.export_text()


def test_the_panel_shows_step_weights_both_versions_the_tests_and_the_next_decision() -> None:
    text = render(state_at_step_two(), now=1430.0, next_at=1480.0, policy=POLICY)
    assert "rollout fraud: fraud-detector v1 -> v2" in text
    assert "step 2/2" in text and "weights 50/50 (confirmed)" in text
    assert "next look in 50s" in text
    assert "step 2 may pass in 50s (its hold)" in text  # started 1300, holds 3m
    # Per version: the weight, this look's P95 and error rate, the judge's over all looks.
    (v1,) = [line for line in text.splitlines() if line.strip("│ ").startswith("v1 ")]
    assert "50%" in v1 and "95.0 ms" in v1 and "0.10%" in v1
    (v2,) = [line for line in text.splitlines() if line.strip("│ ").startswith("v2 ")]
    assert "190.0 ms" in v2 and "0.20%" in v2
    # Each test: the change, its interval, the e-value against the rollback threshold.
    (latency,) = [line for line in text.splitlines() if "latency_p95" in line]
    assert "p95_ratio 2" in latency and "[1.61, 2.4] (99%)" in latency
    assert "42 / 100 ########.." in latency  # log 42 / log 100 = 0.81 of the way
    (errors,) = [line for line in text.splitlines() if "error_rate " in line]
    assert "0.5 / 100 .........." in errors
    # The last five looks, numbered.
    rows = [line.strip("│ ").split()[0] for line in text.splitlines() if "ms ->" in line]
    assert rows == ["3", "4", "5", "6", "7"]


def test_a_decided_rollout_says_why_and_no_countdown() -> None:
    state = replace(
        state_at_step_two(),
        phase=Phase.ROLLED_BACK,
        reason="regression confirmed: P95 x2.0",
        desired=Weights.candidate_share(0),
    )
    text = render(state, now=1430.0, next_at=1480.0, policy=POLICY)
    assert "RolledBack" in text and "decided: regression confirmed: P95 x2.0" in text
    assert "next look" not in text and "weights 100/0" in text


def test_a_fresh_rollout_renders_without_looks() -> None:
    state = RolloutState.new("fraud", Target("fraud-detector", "v1", "v2"), "d", 1000.0)
    text = render(state, now=1000.0)
    assert "Pending" in text and "step 1 " in text and "e-value" not in text


def _run(
    console: Console, stack: Stack, prometheus: BackfilledPrometheus, tmp_path: Path
) -> ExitCode:
    return run_from_spec(
        make_spec("gate-same", stack.haproxy, prometheus.url),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=None,
        console=console,
        clock=ReplayClock(prometheus.dataset.start + 120),
    )


def test_a_run_into_a_pipe_prints_plain_lines_only(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    out = io.StringIO()
    code = _run(Console(file=out, width=200), stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PROMOTED
    text = out.getvalue()
    assert "look 1 at weights 80/20" in text and BOX not in text and "\x1b[" not in text


def test_a_run_on_a_terminal_shows_the_panel(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    out = io.StringIO()
    terminal = Console(file=out, width=160, force_terminal=True, color_system="standard")
    code = _run(terminal, stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PROMOTED
    text = out.getvalue()
    assert BOX in text and "rollout gate-same: gate-same" in text
    assert "e-value / rollback at" in text and "Promoted" in text
    assert "look 1 at weights 80/20" in text  # the plain lines still scroll above it


def test_status_watch_on_a_terminal_shows_the_same_panel(tmp_path: Path) -> None:
    state = replace(
        state_at_step_two(),
        phase=Phase.PROMOTED,
        step=2,
        desired=Weights.candidate_share(100),
        reason="all 2 steps passed",
        report_written=True,
    )
    LocalStateStore(tmp_path).save("default-fraud", state, None)
    out = io.StringIO()
    terminal = Console(file=out, width=160, force_terminal=True, color_system="standard")
    code = status(tmp_path, "fraud", watch=True, timeout=0, console=terminal, poll=0.01)
    assert code is ExitCode.PROMOTED
    text = out.getvalue()
    assert BOX in text and "decided: all 2 steps passed" in text and "latency_p95" in text
    plain = io.StringIO()
    status(tmp_path, "fraud", watch=True, timeout=0, console=Console(file=plain), poll=0.01)
    assert BOX not in plain.getvalue() and "phase: Promoted" in plain.getvalue()


def test_the_live_panel_wraps_a_long_reason_on_the_clis_soft_wrapping_console() -> None:
    reason = "regression confirmed: " + "candidate P95 145 ms vs baseline 75.5 ms; " * 4
    state = replace(state_at_step_two(), phase=Phase.ROLLED_BACK, reason=reason.strip())
    console = Console(file=io.StringIO(), width=80, record=True, soft_wrap=True)  # as the CLI's
    panel = LivePanel(Live(console=console), lambda: 1430.0, POLICY)
    panel.state = state
    console.print(panel)
    text = " ".join(line.strip("│ ") for line in console.export_text().splitlines())
    assert reason.strip() in text  # every word of it, over several lines
