"""The `rollout` command's own parsing: policy validation and bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rollout.cli import app
from rollout.spec import POLICY_DIR

runner = CliRunner()


def test_policy_validate_accepts_the_shipped_policies() -> None:
    files = [str(p) for p in sorted(POLICY_DIR.glob("*.yaml"))]
    result = runner.invoke(app, ["policy", "validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count(": valid") == len(files)


def test_policy_validate_prints_every_problem_with_its_field_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - {weight: -1, hold: -1s}\nalpha: 2\nsurprise: 1\n")
    result = runner.invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 3
    for field in ("steps.0.weight", "steps.0.hold", "alpha", "surprise"):
        assert f"  {field}: " in result.output, result.output
    assert str(bad) in result.output


def test_run_with_a_missing_spec_file_is_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 3
    assert "cannot read" in result.output


def test_abort_without_a_saved_rollout_says_there_is_nothing_to_abort(tmp_path: Path) -> None:
    spec = tmp_path / "rollout.yaml"
    spec.write_text(
        "kind: ModelRollout\n"
        "metadata: {name: fraud}\n"
        "spec:\n"
        "  model: fraud-detector\n"
        "  baseline: {version: v1}\n"
        "  candidate: {version: v2}\n"
        "  router: {kind: gateway-api, httpRoute: fraud, baselineBackend: fraud-v1,\n"
        "           candidateBackend: fraud-v2}\n"
        "  prometheus: {url: 'http://127.0.0.1:9'}\n"
    )
    result = runner.invoke(app, ["abort", str(spec), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 3, result.output
    assert "nothing to abort" in result.output and "default-fraud.json" in result.output


# ---------------------------------------------------------------------------- usage errors: exit 3

ROOT = Path(__file__).resolve().parent.parent
GATE = ["gate", "--prometheus-url", "http://127.0.0.1:9", "--model", "m"]
GATE_FULL = [*GATE, "--baseline", "v1", "--candidate", "v2"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([*GATE, "--candidate", "v2"], "--baseline"),  # a missing required option
        ([*GATE_FULL, "--format", "xml"], "--format"),  # a value outside the choices
        ([*GATE_FULL, "--windw", "5m"], "--windw"),  # a misspelt option
        (["run"], "SPEC"),  # a missing argument
        (["demo", "--scenario", "slow"], "--scenario"),
        (["demo", "--rps", "0"], "--rps"),
        (["deploy"], "deploy"),  # an unknown command
        (["policy", "check"], "check"),  # an unknown subcommand
        (["policy", "validate"], "FILE"),
        (["abort"], "SPEC"),
    ],
)
def test_every_usage_error_exits_3_naming_the_option_and_the_fix(
    args: list[str], named: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert named in result.output
    assert "--help" in result.output  # where the fix is, at least


def test_a_missing_option_says_what_to_add() -> None:
    result = runner.invoke(app, [*GATE, "--candidate", "v2"])
    assert result.exit_code == 3
    assert "Add --baseline VERSION" in result.output


def test_no_command_at_all_shows_the_help_and_exits_3() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 3
    assert "Commands:" in result.output


def test_usage_errors_exit_3_from_the_installed_command_too() -> None:
    """The console script's own entry (not CliRunner): `python -m rollout.cli`."""
    for args in (["gate", "--prometheus-url", "x"], ["frob"], ["demo", "--scenario", "slow"]):
        done = subprocess.run(
            [sys.executable, "-m", "rollout.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 3, (args, done.stderr)
        assert "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_with_an_unknown_scenario_fails() -> None:
    if not (ROOT / ".venv" / "bin" / "rollout").exists():
        pytest.skip("no .venv: `make demo` would create it first")
    done = subprocess.run(
        # -o: take the venv and Prometheus as made; this is about the demo target's exit.
        ["make", "-o", ".venv/.installed", "-o", "prometheus", "demo", "SCENARIO=slow"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "--scenario" in done.stderr and "Error 3" in done.stderr


# ---------------------------------------------------------------------------- help


def test_short_help_version_and_completion_are_there() -> None:
    assert runner.invoke(app, ["-h"]).exit_code == 0
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("rollout ")
    assert "--show-completion" in runner.invoke(app, ["--help"]).output
    for command in (["run"], ["gate"], ["demo"], ["abort"], ["policy", "validate"]):
        result = runner.invoke(app, [*command, "-h"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "{" not in result.output


def test_help_keeps_sentences_whole_and_states_the_report_dirs_default() -> None:
    result = runner.invoke(app, ["run", "--help"], terminal_width=200)
    assert "Usage: rollout run [OPTIONS] SPEC" in result.output
    assert "--report-dir DIR" in result.output and "default: none written" in result.output
    assert "2 paused, or interrupted" in result.output  # an interrupted run exits 2
    demo = runner.invoke(app, ["demo", "--help"], terminal_width=200).output
    # The docstring's line breaks are re-flowed: a sentence is on one line at 200 columns.
    assert "`healthy` leaves it as fast as v1." in demo


def test_an_unexpected_error_exits_4_never_1_which_means_a_regression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("rollout.gate.run_gate", broken)
    args = ["gate", "--prometheus-url", "http://127.0.0.1:9", "--model", "m"]
    result = runner.invoke(app, [*args, "--baseline", "1", "--candidate", "2", "--window", "5m"])
    assert result.exit_code == 4
    assert "internal error (RuntimeError)" in result.output and "not a verdict" in result.output
