"""`rollout gate` and `rollout run` against VictoriaMetrics decide as against Prometheus.

The gate scenarios of tests/gate/test_gate_backfill.py (the same models, seeds and end
time, so the same samples) are imported into a real VictoriaMetrics started here; each
is judged against both backends, and the decisions, reasons and every look's counts
must agree. A rollout (the driver's reconciler on the replay clock of tests/support/replay.py,
a real HAProxy) goes through the same steps to the same end on both. VictoriaMetrics 1.79
stores no exemplars: a failing gate still fails, and
its report says the backend gave none instead of failing the evidence step.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rollout.cli import app
from rollout.driver import run_from_spec
from rollout.exit_codes import ExitCode
from rollout.gate import GateRequest, run_gate
from rollout.state import LocalFileStore
from tests.support.backfill import BackfilledPrometheus
from tests.support.replay import POLICY, ReplayClock, running_stack
from tests.support.replay import make_spec as rollout_spec
from tests.support.scenarios import BASELINE, CANDIDATE, GATE_WINDOW, MINUTES, STANDARD_MODELS
from tests.support.synthetic import synthesize
from tests.support.victoria import RunningVictoria, victoria_with

SCENARIOS = ("gate-same", "gate-p95-30", "gate-errors", "gate-little", "gate-nocandidate")


@pytest.fixture(scope="module")
def victoria(
    synthetic_prometheus: BackfilledPrometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningVictoria]:
    """VictoriaMetrics holding the scenarios' samples exactly as the shared Prometheus does."""
    models = [m for m in STANDARD_MODELS if m.model in SCENARIOS]
    dataset = synthesize(models, end=synthetic_prometheus.dataset.end, minutes=MINUTES)
    running = victoria_with(dataset, tmp_path_factory.mktemp("victoria-gate"))
    try:
        yield running
    finally:
        running.stop()


def gate(url: str, end: float, model: str, report_dir: Path) -> tuple[ExitCode, str, dict]:  # type: ignore[type-arg]
    request = GateRequest(
        prometheus_url=url,
        model=model,
        baseline=BASELINE,
        candidate=CANDIDATE,
        policy="default",
        window=None,
        start=f"{end - GATE_WINDOW:.0f}",
        end=f"{end:.0f}",
        report_dir=report_dir,
        output_format="text",
        bearer_token_file=None,
    )
    out = io.StringIO()
    code = run_gate(request, Console(file=out, width=120))
    return code, out.getvalue(), json.loads((report_dir / "report.json").read_text())


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gate-same", ExitCode.PROMOTED),
        ("gate-p95-30", ExitCode.ROLLED_BACK),
        ("gate-errors", ExitCode.ROLLED_BACK),
        ("gate-little", ExitCode.PAUSED),
        ("gate-nocandidate", ExitCode.PAUSED),
    ],
)
def test_the_same_decision_as_on_prometheus(
    synthetic_prometheus: BackfilledPrometheus,
    victoria: RunningVictoria,
    tmp_path: Path,
    model: str,
    expected: ExitCode,
) -> None:
    end = synthetic_prometheus.dataset.end
    on_prometheus = gate(synthetic_prometheus.url, end, model, tmp_path / "prometheus")
    on_victoria = gate(victoria.url, end, model, tmp_path / "victoria")
    assert on_prometheus[0] == expected, on_prometheus[1]
    assert on_victoria[0] == expected, on_victoria[1]
    prom_doc, vm_doc = on_prometheus[2], on_victoria[2]
    assert vm_doc["decision"] == prom_doc["decision"]
    assert vm_doc["reason"] == prom_doc["reason"]
    for prom_look, vm_look in zip(prom_doc["observations"], vm_doc["observations"], strict=True):
        for role in ("baseline", "candidate"):
            assert vm_look[role] == prom_look[role], (role, vm_look["start"])
    # Only VictoriaMetrics is taken for a backend without exemplars (Prometheus here was
    # started without exemplar storage: its empty answer is "none found").
    assert not any("from this backend" in note for note in prom_doc["notes"])


def test_a_failing_gate_says_the_backend_gave_no_exemplars(
    synthetic_prometheus: BackfilledPrometheus, victoria: RunningVictoria, tmp_path: Path
) -> None:
    end = synthetic_prometheus.dataset.end
    code, output, document = gate(victoria.url, end, "gate-errors", tmp_path / "reports")
    assert code == ExitCode.ROLLED_BACK, output
    assert document["evidence"] == []
    assert any("no exemplars from this backend" in note for note in document["notes"])


def test_the_cli_command_runs_the_gate_on_victoria(
    synthetic_prometheus: BackfilledPrometheus, victoria: RunningVictoria
) -> None:
    end = synthetic_prometheus.dataset.end
    args = ["gate", "--prometheus-url", victoria.url, "--model", "gate-p95-30"]
    args += ["--baseline", BASELINE, "--candidate", CANDIDATE, "--policy", "default"]
    args += ["--start", f"{end - GATE_WINDOW:.0f}", "--end", f"{end:.0f}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    assert "exceeds the allowed +20%" in result.output


def rollout(url: str, start: float, model: str, workdir: Path) -> tuple[ExitCode, list, dict]:  # type: ignore[type-arg]
    """`rollout run`'s driver on a fresh HAProxy stack: (exit code, weights, report)."""
    with running_stack(workdir / "haproxy") as stack:
        code = run_from_spec(
            rollout_spec(model, stack.haproxy, url),
            POLICY,
            state_dir=workdir / "state",
            report_dir=workdir / "report",
            console=Console(file=io.StringIO(), width=200),
            clock=ReplayClock(start),
        )
    state = LocalFileStore(workdir / "state" / f"default-{model}.json").load()
    assert state is not None
    weights = [c.weights for c in state.weight_changes]
    return code, weights, json.loads((workdir / "report" / "report.json").read_text())


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gate-same", ExitCode.PROMOTED), ("gate-errors", ExitCode.ROLLED_BACK)],
)
def test_a_rollout_runs_the_same_on_victoria(
    synthetic_prometheus: BackfilledPrometheus,
    victoria: RunningVictoria,
    tmp_path: Path,
    model: str,
    expected: ExitCode,
) -> None:
    start = synthetic_prometheus.dataset.start + 120
    on_prometheus = rollout(synthetic_prometheus.url, start, model, tmp_path / "prometheus")
    on_victoria = rollout(victoria.url, start, model, tmp_path / "victoria")
    assert on_prometheus[0] == on_victoria[0] == expected
    assert on_victoria[1] == on_prometheus[1]  # the same weight changes
    prom_doc, vm_doc = on_prometheus[2], on_victoria[2]
    assert vm_doc["decision"] == prom_doc["decision"]
    assert len(vm_doc["observations"]) == len(prom_doc["observations"])
    for prom_look, vm_look in zip(prom_doc["observations"], vm_doc["observations"], strict=True):
        for role in ("baseline", "candidate"):
            assert vm_look[role] == prom_look[role], (role, vm_look["start"])
    if expected is ExitCode.ROLLED_BACK:  # the evidence step asked, and was told why not
        assert any("no exemplars from this backend" in note for note in vm_doc["notes"])
