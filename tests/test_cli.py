"""The `rollout` command's own parsing: policy validation and bad input."""

from __future__ import annotations

from pathlib import Path

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
    bad.write_text("steps:\n  - {weight: 0, hold: -1s}\nalpha: 2\nsurprise: 1\n")
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
        "  router: {kind: nop}\n"
        "  prometheus: {url: 'http://127.0.0.1:9'}\n"
    )
    result = runner.invoke(app, ["abort", str(spec), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 3, result.output
    assert "nothing to abort" in result.output and "default-fraud.json" in result.output
