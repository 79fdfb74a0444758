"""The judge on plain histories: verdicts, reasons, data rules, validity by simulation."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from judge_sim import LES, rollout

from rollout.analysis.judge import judge, judge_next, resolution_warning
from rollout.analysis.observation import (
    Bucket,
    CustomValue,
    Observation,
    QueryRecord,
    VersionCounts,
)
from rollout.analysis.verdict import Verdict
from rollout.spec import Policy


def policy(**fields: Any) -> Policy:
    return Policy.model_validate({"steps": [{"weight": 10, "hold": "5m"}], **fields})


def test_healthy_candidate_passes_and_states_the_change() -> None:
    history = rollout(np.random.default_rng(1), 20, 50.0)
    result = judge(history, policy())
    assert result.verdict is Verdict.NO_REGRESSION and result.ready
    assert result.decided_by is None
    latency = next(c for c in result.comparisons if c.metric == "latency_p95")
    assert latency.interval is not None and latency.interval[0] < 1.0 < latency.interval[1]
    assert "P95" in result.reason and "% CS" in result.reason and "error rate" in result.reason
    assert "cannot be shown with these buckets" in result.reason  # the resolution, said


def test_a_look_leaning_toward_a_regression_is_not_ready() -> None:
    """P95 +30% at 20 req/s: not shown yet at alpha, but the estimate is past the tolerance and
    the evidence leans that way: the step holds rather than moving more traffic to it."""
    history = rollout(np.random.default_rng(0), 20, 20.0, latency_scale=1.3)
    result = judge(history, policy())
    assert result.verdict is Verdict.NO_REGRESSION and not result.ready
    assert "leans toward" in result.reason and "latency_p95" in result.reason


def test_the_past_is_never_recomputed_when_the_layout_changes() -> None:
    """A later look without one of the first look's bounds is NO_DATA for latency; the
    earlier looks' evidence is what it was."""
    history = rollout(np.random.default_rng(9), 8, 50.0)
    before = judge(history, policy())
    last = history[-1]
    fewer = tuple(b for b in last.candidate.buckets or () if b.le != LES[20])
    history.append(
        replace(
            last,
            start=last.end,
            end=last.end + 30,
            candidate=replace(last.candidate, buckets=fewer),
        )
    )
    after = judge(history, policy())
    assert after.verdict is Verdict.NO_DATA and "bucket layout changed" in after.reason
    latency = {c.metric: c for c in before.comparisons}["latency_p95"]
    assert latency.e_value is not None and latency.e_value < 10


def test_folding_looks_one_at_a_time_equals_judging_the_history() -> None:
    history = rollout(np.random.default_rng(10), 12, 50.0, latency_scale=1.3)
    analysis = None
    for t in range(len(history)):
        analysis, step = judge_next(analysis, history[: t + 1], policy())
        assert step == judge(history[: t + 1], policy())


def test_latency_regression_fails_with_every_number_in_the_reason() -> None:
    history = rollout(np.random.default_rng(2), 20, 50.0, latency_scale=1.5)
    result = judge(history, policy())
    assert result.verdict is Verdict.FAIL
    assert result.decided_by == "latency_p95"
    latency = next(c for c in result.comparisons if c.metric == "latency_p95")
    assert latency.e_value is not None and latency.threshold == pytest.approx(2 / (0.01 / 2))
    assert latency.e_value >= latency.threshold
    assert latency.p_value is not None and latency.p_value <= 0.01
    assert latency.effect is not None and latency.effect > 1.3
    assert "exceeds the allowed +20%" in result.reason and "e-value" in result.reason


def test_errors_fail_early_at_low_counts_before_the_minimum_sample() -> None:
    history = rollout(np.random.default_rng(3), 2, 5.0, candidate_error=0.5)
    assert sum(o.candidate.requests or 0 for o in history) < 200
    result = judge(history, policy())
    assert result.verdict is Verdict.FAIL
    assert result.decided_by == "error_rate"


def test_too_little_data_is_inconclusive_never_pass() -> None:
    history = rollout(np.random.default_rng(4), 3, 2.0)
    result = judge(history, policy(minRequests=1000))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "too little data" in result.reason


def test_missing_candidate_latency_is_no_data_naming_the_query() -> None:
    history = rollout(np.random.default_rng(5), 5, 50.0)
    query = QueryRecord("latency", "sum by (model_version, le) (...)", 150.0, 1, "empty")
    last = history[-1]
    history[-1] = replace(
        last,
        candidate=replace(last.candidate, buckets=None),
        queries=(query,),
        problems=("latency: no series for candidate",),
    )
    result = judge(history, policy())
    assert result.verdict is Verdict.NO_DATA
    assert result.decided_by == "latency_p95"
    assert "candidate latency" in result.reason and "sum by (model_version, le)" in result.reason


def test_missing_requests_is_no_data_for_errors() -> None:
    history = rollout(np.random.default_rng(6), 5, 50.0)
    history[-1] = replace(history[-1], baseline=replace(history[-1].baseline, requests=None))
    result = judge(history, policy())
    assert result.verdict is Verdict.NO_DATA
    assert result.decided_by == "error_rate"


def test_empty_history_is_no_data() -> None:
    assert judge([], policy()).verdict is Verdict.NO_DATA


def test_absent_error_series_counts_as_zero_errors() -> None:
    history = [
        replace(
            o,
            baseline=replace(o.baseline, errors=None),
            candidate=replace(o.candidate, errors=None),
        )
        for o in rollout(np.random.default_rng(7), 10, 50.0)
    ]
    result = judge(history, policy())
    assert result.verdict is Verdict.NO_REGRESSION
    assert "counted as 0" in result.reason


def test_slo_guards_fail_on_their_own() -> None:
    history = rollout(np.random.default_rng(8), 20, 50.0, baseline_error=0.05, candidate_error=0.05)
    result = judge(history, policy(slo={"maxErrorRate": 0.01, "maxLatencySeconds": 0.05}))
    failed = {c.metric for c in result.comparisons if c.verdict is Verdict.FAIL}
    assert failed == {"slo:error_rate", "slo:latency_p95"}
    assert result.verdict is Verdict.FAIL


def _with_custom(
    history: list[Observation], baseline: float, candidate: float
) -> list[Observation]:
    return [replace(o, custom=(CustomValue("kpi", baseline, candidate),)) for o in history]


def test_custom_metric_relative_and_absolute_rules() -> None:
    base = rollout(np.random.default_rng(9), 15, 50.0)
    rule = {"name": "kpi", "query": "sum(x{version_selector})", "maxRelativeChange": 0.1}
    worse = judge(_with_custom(base, 1.0, 1.5), policy(customMetrics=[rule]))
    assert worse.verdict is Verdict.FAIL and worse.decided_by == "custom:kpi"
    fine = judge(_with_custom(base, 1.0, 1.05), policy(customMetrics=[rule]))
    assert fine.verdict is Verdict.NO_REGRESSION
    bound = {"name": "kpi", "query": "sum(x{version_selector})", "maxValue": 2.0}
    over = judge(_with_custom(base, 1.0, 3.0), policy(customMetrics=[bound]))
    assert over.decided_by == "custom:kpi:max_value" and over.verdict is Verdict.FAIL
    missing = _with_custom(base, 1.0, 1.0)
    missing[-1] = replace(missing[-1], custom=(CustomValue("kpi", 1.0, math.nan),))
    assert judge(missing, policy(customMetrics=[rule])).verdict is Verdict.NO_DATA


def test_alpha_is_split_over_the_active_tests() -> None:
    history = rollout(np.random.default_rng(10), 5, 50.0)
    result = judge(history, policy(slo={"maxErrorRate": 0.2}))
    errors = next(c for c in result.comparisons if c.metric == "error_rate")
    assert errors.threshold == pytest.approx(3 / 0.01)


@pytest.mark.parametrize(
    "scenario",
    [
        {},
        {"latency_scale": 1.3},
        {"candidate_error": 0.03},
        {"latency_scale": 0.8},
    ],
)
def test_details_off_gives_the_same_verdict_at_every_look(scenario: dict[str, float]) -> None:
    history = rollout(np.random.default_rng(11), 12, 20.0, **scenario)
    for t in range(1, len(history) + 1):
        full = judge(history[:t], policy(minRequests=100))
        quick = judge(history[:t], policy(minRequests=100), details=False)
        assert (quick.verdict, quick.decided_by) == (full.verdict, full.decided_by)
        assert [c.verdict for c in quick.comparisons] == [c.verdict for c in full.comparisons]


@pytest.mark.parametrize("rps", [2.0, 30.0])
def test_a_a_rollouts_roll_back_at_most_alpha(rps: float) -> None:
    """200 A/A rollouts of 30 looks at alpha 0.05 (so the rate is measurable)."""
    rng = np.random.default_rng(12)
    runs, alpha = 200, 0.05
    slack = 3 * math.sqrt(alpha * (1 - alpha) / runs)
    chosen = policy(alpha=alpha)
    rollbacks = 0
    for _ in range(runs):
        # The reported e-value is the maximum over all looks so far, so one call on
        # the whole history fails exactly when some earlier call would have.
        history = rollout(rng, 30, rps)
        rollbacks += judge(history, chosen, details=False).verdict is Verdict.FAIL
    assert rollbacks / runs <= alpha + slack


def test_kayenta_judge_scores_per_interval_values() -> None:
    kayenta = {"kind": "kayenta", "marginalScore": 60, "passScore": 90}
    slow = rollout(np.random.default_rng(13), 10, 50.0, latency_scale=1.6)
    result = judge(slow, policy(judge=kayenta))
    assert result.verdict is Verdict.FAIL and result.decided_by == "kayenta:score"
    latency = next(c for c in result.comparisons if c.metric == "latency_p95")
    assert latency.verdict is Verdict.FAIL
    healthy = rollout(np.random.default_rng(14), 10, 50.0)
    assert judge(healthy, policy(judge=kayenta)).verdict is Verdict.NO_REGRESSION


def test_coarse_buckets_are_warned_about_before_a_rollout_with_the_fix() -> None:
    coarse = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, math.inf)
    counts = (0, 100, 500, 800, 900, 960, 990, 995, 999, 1000, 1000, 1000, 1000)
    look = Observation(
        0.0,
        60.0,
        VersionCounts(1000, 0, tuple(map(Bucket, coarse, counts))),
        VersionCounts(0, 0, None),
    )
    warning = resolution_warning(look, policy())
    assert warning is not None
    assert "(100 ms, 150 ms]" in warning and "+100%" in warning and "LATENCY_BUCKETS" in warning
    assert resolution_warning(rollout(np.random.default_rng(1), 1, 50.0)[0], policy()) is None
