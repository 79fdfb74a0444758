"""`router: nop` is refused at validate with a hint to `rollout gate`: `policy validate`,
`run` and the controller say the same, and nothing is started."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rollout.cli import app
from rollout.k8s.resource import Refused, validate
from rollout.routers.nop import REFUSAL

runner = CliRunner()
SPEC = """\
apiVersion: rollout.mlops.dev/v1alpha1
kind: ModelRollout
metadata: {name: fraud}
spec:
  model: fraud-detector
  baseline: {version: v1}
  candidate: {version: v2}
  router: {kind: nop}
  prometheus: {url: 'http://127.0.0.1:9'}
"""


def test_policy_validate_and_run_refuse_nop_alike_with_a_hint_to_the_gate(tmp_path: Path) -> None:
    spec = tmp_path / "rollout.yaml"
    spec.write_text(SPEC)
    state = tmp_path / "state"

    validated = runner.invoke(app, ["policy", "validate", str(spec)])
    ran = runner.invoke(app, ["run", str(spec), "--state-dir", str(state)])

    for result in (validated, ran):
        assert result.exit_code == 3, result.output
        assert f"spec.router: {REFUSAL}" in " ".join(result.output.split())
        assert "rollout gate" in result.output
    assert not state.exists()  # refused before anything was started


def test_the_controller_refuses_it_the_same_way() -> None:
    data = {"metadata": {"name": "fraud", "namespace": "ml", "generation": 1}}
    data["spec"] = {
        "model": "fraud-detector",
        "baseline": {"version": "v1"},
        "candidate": {"version": "v2"},
        "router": {"kind": "nop"},
        "prometheus": {"url": "http://127.0.0.1:9"},
    }
    judged = validate(data)
    assert isinstance(judged, Refused)
    assert [(p.path, p.message) for p in judged.problems] == [("spec.router", REFUSAL)]
