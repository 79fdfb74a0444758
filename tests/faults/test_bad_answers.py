"""Bad answers from Prometheus, through a fault proxy in front of the real one: each is
classified (a source error, or no data named in the observation's problems), reported,
and never read as a pass.

The source and the judge read the standard synthetic backfill; the driver runs on the
replay clock of tests/support/replay.py against a real HAProxy, so a rollout of minutes of
data takes seconds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from rollout.analysis.judge import judge
from rollout.analysis.observation import MetricsSourceError, Observation, Target
from rollout.analysis.prometheus import PrometheusSource
from rollout.analysis.verdict import Verdict
from rollout.driver import run_from_spec
from rollout.exit_codes import ExitCode
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.routers.haproxy import HAProxyRouter
from rollout.spec import PrometheusConfig, RolloutSpec
from rollout.state import LocalFileStore, Phase, RolloutState
from tests.support.backfill import BackfilledPrometheus
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.replay import POLICY, ReplayClock, Stack, answered_by, make_spec
from tests.support.scenarios import BASELINE, CANDIDATE, GATE_WINDOW

TARGET = Target("gate-same", BASELINE, CANDIDATE)
W20 = Weights.candidate_share(20)
TIMEOUT = 0.5  # the source's timeout; the SLOW fault answers after three times that

ERRORS = {
    Fault.SLOW: "timed out",
    Fault.HTTP_500: "answered HTTP 500",
    Fault.INVALID_JSON: "answered garbage",
}
NO_DATA = {
    Fault.NAN: "nan for the",
    Fault.INF: "inf for the",
    Fault.EMPTY: "no series for the baseline",
    Fault.ONE_VERSION: "no series for the candidate",
}


@pytest.fixture
def proxy(synthetic_prometheus: BackfilledPrometheus) -> Iterator[FaultProxy]:
    with FaultProxy(synthetic_prometheus.url, delay=3 * TIMEOUT, keep_version=BASELINE) as p:
        yield p


def source(proxy: FaultProxy) -> PrometheusSource:
    return PrometheusSource(PrometheusConfig(url=proxy.url, timeout=TIMEOUT), POLICY.metrics)


def look(proxy: FaultProxy, synthetic_prometheus: BackfilledPrometheus) -> Observation:
    end = synthetic_prometheus.dataset.end
    metrics = source(proxy)
    try:
        return metrics.observe(TARGET, end - GATE_WINDOW, end)
    finally:
        metrics.close()


# ---------------------------------------------------------------------------- source and judge


def test_through_the_proxy_without_a_fault_the_same_data_passes(
    proxy: FaultProxy, synthetic_prometheus: BackfilledPrometheus
) -> None:
    observation = look(proxy, synthetic_prometheus)
    assert not observation.problems
    assert judge([observation], POLICY).verdict is Verdict.NO_REGRESSION


@pytest.mark.parametrize("fault", list(ERRORS), ids=str)
def test_a_failing_prometheus_is_a_source_error_not_data(
    proxy: FaultProxy, synthetic_prometheus: BackfilledPrometheus, fault: Fault
) -> None:
    proxy.switch(fault)
    with pytest.raises(MetricsSourceError, match=ERRORS[fault]) as caught:
        look(proxy, synthetic_prometheus)
    assert proxy.url in str(caught.value) and "[requests and latency query]" in str(caught.value)
    # Transient failures are retried (3 tries); an answer that is not JSON is not.
    assert len(proxy.seen_headers()) == (1 if fault is Fault.INVALID_JSON else 3)


@pytest.mark.parametrize("fault", list(ERRORS), ids=str)
def test_exemplars_from_a_failing_prometheus_are_a_source_error(
    proxy: FaultProxy, synthetic_prometheus: BackfilledPrometheus, fault: Fault
) -> None:
    proxy.switch(fault)
    metrics = source(proxy)
    end = synthetic_prometheus.dataset.end
    try:
        with pytest.raises(MetricsSourceError, match=ERRORS[fault]):
            metrics.exemplars(TARGET, CANDIDATE, end - GATE_WINDOW, end)
    finally:
        metrics.close()


@pytest.mark.parametrize("fault", list(NO_DATA), ids=str)
def test_unusable_values_are_no_data_named_in_the_problems_and_never_a_pass(
    proxy: FaultProxy, synthetic_prometheus: BackfilledPrometheus, fault: Fault
) -> None:
    good = look(proxy, synthetic_prometheus)
    proxy.switch(fault)
    bad = look(proxy, synthetic_prometheus)
    assert bad.candidate.requests is None and bad.candidate.buckets is None
    if fault is Fault.ONE_VERSION:  # the baseline's series came through untouched
        assert bad.baseline == good.baseline
    else:
        assert bad.baseline.requests is None
    assert any(NO_DATA[fault] in problem.lower() for problem in bad.problems), bad.problems
    assert any("requests:" in p for p in bad.problems)
    assert any("latency:" in p for p in bad.problems)
    assert judge([bad], POLICY).verdict is Verdict.NO_DATA
    # Good looks before do not carry a look without data: the latest must be complete.
    assert judge([good, good, bad], POLICY).verdict is Verdict.NO_DATA


def test_only_the_baselines_series_is_no_data_for_the_candidate_too(
    proxy: FaultProxy, synthetic_prometheus: BackfilledPrometheus
) -> None:
    proxy.keep_version = CANDIDATE
    proxy.switch(Fault.ONE_VERSION)
    bad = look(proxy, synthetic_prometheus)
    assert bad.baseline.requests is None and bad.candidate.requests is not None
    assert any("no series for the baseline" in p for p in bad.problems)
    assert judge([bad], POLICY).verdict is Verdict.NO_DATA


# ---------------------------------------------------------------------------- the driver


def _spec(stack: Stack, proxy: FaultProxy) -> RolloutSpec:
    document = make_spec("gate-same", stack.haproxy, proxy.url).model_dump(
        mode="json", by_alias=True
    )
    document["spec"]["prometheus"]["timeout"] = TIMEOUT
    return RolloutSpec.model_validate(document)


def _run(
    stack: Stack,
    proxy: FaultProxy,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    fault: Fault,
    until: float | None = None,
) -> tuple[ExitCode, RolloutState, dict[str, object]]:
    """A rollout whose Prometheus answers with `fault` from 100 s in (until `until` s in)."""
    start = synthetic_prometheus.dataset.start + 120
    at = {start + 100: lambda: proxy.switch(fault)}
    if until is not None:
        at[start + until] = lambda: proxy.switch(Fault.NONE)
    code = run_from_spec(
        _spec(stack, proxy),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=tmp_path / "report",
        console=Console(file=(tmp_path / "console.txt").open("a"), width=200),
        clock=ReplayClock(start, at=at),
    )
    state = LocalFileStore(tmp_path / "state" / "default-gate-same.json").load()
    assert state is not None
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    return code, state, report


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(ERRORS), ids=str)
def test_a_prometheus_failing_past_the_limit_rolls_back_never_promotes(
    stack: Stack,
    proxy: FaultProxy,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    fault: Fault,
) -> None:
    code, state, report = _run(stack, proxy, synthetic_prometheus, tmp_path, fault)
    assert code is ExitCode.ROLLED_BACK and state.phase is Phase.ROLLED_BACK
    assert "Prometheus failing" in state.reason and ERRORS[fault] in state.reason
    assert state.weight_changes[-1].weights == ALL_BASELINE
    assert answered_by(stack.haproxy) == Counter({BASELINE: 40})
    assert report["decision"] == "rolled_back"
    assert "waiting for Prometheus" in (tmp_path / "console.txt").read_text()


@pytest.mark.parametrize("fault", list(NO_DATA), ids=str)
def test_looks_without_data_pause_the_rollout_at_its_step_never_promote(
    stack: Stack,
    proxy: FaultProxy,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    fault: Fault,
) -> None:
    code, state, report = _run(stack, proxy, synthetic_prometheus, tmp_path, fault)
    assert code is ExitCode.PAUSED and state.phase is Phase.PAUSED
    assert state.step == 0 and state.desired == W20
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == W20
    assert state.judgement is not None and state.judgement.verdict is Verdict.NO_DATA
    assert state.history[-1].problems  # what was missing, for the report
    assert report["decision"] == "paused"
    assert NO_DATA[fault] in json.dumps(report["observations"]).lower()


@pytest.mark.parametrize("fault", [Fault.HTTP_500, Fault.NAN], ids=str)
def test_a_passing_fault_is_noted_and_the_rollout_goes_on(
    stack: Stack,
    proxy: FaultProxy,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    fault: Fault,
) -> None:
    code, state, report = _run(stack, proxy, synthetic_prometheus, tmp_path, fault, until=150)
    assert code is ExitCode.PROMOTED
    if fault is Fault.HTTP_500:
        assert any("Prometheus failing" in n and "HTTP 500" in n for n in state.notes)
        assert any("HTTP 500" in note for note in report["notes"])  # type: ignore[attr-defined]
    else:
        bad = [o for o in state.history if o.problems]  # the look without data is kept
        assert bad and all(o.candidate.requests is None for o in bad)
        assert "nan for the" in json.dumps(report["observations"]).lower()
