"""The ModelRollout CRD: generated from the models, structural, and what manifests/ ships."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from rollout.analysis.observation import Target
from rollout.cli import app
from rollout.k8s.api import RolloutApi
from rollout.k8s.crd import crd_document, crd_yaml
from rollout.k8s.store import StatusStore
from rollout.routers.base import Weights
from rollout.routers.registry import union_tags
from rollout.spec import RolloutBody
from rollout.state import Phase, RolloutState
from tests.support.fake_kube import FakeApiServer
from tests.support.fake_kube.kubectl import kubectl

ROOT = Path(__file__).resolve().parent.parent.parent
# What a JSONSchemaProps of apiextensions.k8s.io/v1 may hold (a structural schema's keys).
ALLOWED = {
    "description", "type", "format", "nullable", "enum", "required", "properties", "items",
    "additionalProperties", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
    "minProperties", "maxProperties", "multipleOf", "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
}  # fmt: skip


def test_rollout_crd_prints_what_manifests_crd_yaml_holds() -> None:
    result = CliRunner().invoke(app, ["crd"])
    assert result.exit_code == 0, result.output
    shipped = (ROOT / "manifests" / "crd.yaml").read_text()
    assert result.output == shipped, (
        "manifests/crd.yaml is not what `rollout crd` prints: run "
        "`rollout crd > manifests/crd.yaml` and commit it"
    )


def _problems(node: Any, path: str) -> list[str]:
    """Why `node` is not a structural schema node (apiextensions' rules), if it is not."""
    found = [f"{path}: {key}" for key in node if key not in ALLOWED]
    typed = "type" in node
    if not typed and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        found.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        found.append(f"{path}: properties and additionalProperties")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            found.append(f"{path}: {bound} must be a boolean in OpenAPI v3.0")
    for name, child in node.get("properties", {}).items():
        found += _problems(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _problems(node[key], f"{path}[{key}]")
    return found


def test_the_schema_is_structural_with_preserved_unknown_fields_only_for_the_policy() -> None:
    (version,) = crd_document()["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert _problems(schema, "") == []
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf" not in text and "oneOf" not in text
    preserved = re.findall(r"x-kubernetes-preserve-unknown-fields", text)
    assert len(preserved) == 1  # spec.policy: a name or an inline policy
    assert schema["properties"]["spec"]["properties"]["policy"][
        "x-kubernetes-preserve-unknown-fields"
    ]


def test_the_spec_schema_has_every_field_of_the_model_by_its_camel_case_name() -> None:
    (version,) = crd_document()["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    names = {field.alias or name for name, field in RolloutBody.model_fields.items()}
    assert set(spec["properties"]) == names
    router = spec["properties"]["router"]
    assert router["properties"]["kind"]["enum"] == list(union_tags())  # from the registry
    assert router["required"] == ["kind"]  # each kind's own fields: the controller checks them
    durations = spec["properties"]["prometheus"]["properties"]["timeout"]
    assert durations["x-kubernetes-int-or-string"] is True  # '10s' or 10
    assert "Default: 10s" in durations["description"]


def test_status_subresource_and_printer_columns() -> None:
    (version,) = crd_document()["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Candidate"] == ".spec.candidate.version"
    assert columns["Weights"] == ".status.weights"
    assert columns["Age"] == ".metadata.creationTimestamp"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for field in ("phase", "step", "weights", "observedGeneration", "conditions", "analysis"):
        assert field in status
    for field in ("decision", "reason", "traceIds", "state"):
        assert field in status


def test_the_yaml_has_no_anchors_and_reads_back_as_the_document() -> None:
    text = crd_yaml()
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == crd_document()


def test_kubectl_applies_the_manifest_and_get_shows_the_printer_columns(tmp_path: Path) -> None:
    with FakeApiServer() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        applied = kubectl(kubeconfig, "apply", "-f", str(ROOT / "manifests" / "crd.yaml"))
        assert applied.returncode == 0, applied.stderr
        document = {
            "apiVersion": "rollout.mlops.dev/v1alpha1",
            "kind": "ModelRollout",
            "metadata": {"name": "fraud", "namespace": "default"},
            "spec": {
                "model": "fraud-detector",
                "baseline": {"version": "v1"},
                "candidate": {"version": "v2"},
                "router": {"kind": "nop"},
                "prometheus": {"url": "http://prometheus:9090", "timeout": "5s"},
                "policy": "default",
            },
        }
        created = kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(document))
        assert created.returncode == 0, created.stderr
        # The status a controller writes at step 2 of 3, through the store.
        store = StatusStore(RolloutApi(api.api_client()), time.time)
        store.set_context("default/fraud", generation=1, steps=3)
        target = Target("fraud-detector", "v1", "v2")
        state = replace(
            RolloutState.new("fraud", target, "digest", time.time()),
            phase=Phase.PROGRESSING,
            step=1,
            desired=Weights.candidate_share(25),
            confirmed=True,
            message="step 2/3 (75/25): holding",
        )
        loaded = store.load("default/fraud")
        assert loaded is None  # no state yet
        store.save("default/fraud", state, None)
        shown = kubectl(kubeconfig, "get", "modelrollouts")
        wide = kubectl(kubeconfig, "get", "mro", "-o", "wide")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "CANDIDATE", "STEP", "WEIGHTS", "AGE"]
    assert row.split()[:5] == ["fraud", "Progressing", "v2", "2", "75/25"]
    assert "BASELINE" in wide.stdout and "step 2/3 (75/25): holding" in wide.stdout
