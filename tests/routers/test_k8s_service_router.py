"""`k8s-service` on the fake API server: pure blue/green, the Service's selector switched;
the policy's steps must all be at weight 0, refused at validate otherwise."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rollout.cli import app
from rollout.k8s.resource import Refused, validate
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.k8s_service import SERVICE
from tests.routers.kube_bench import (
    Object,
    Objects,
    fake_api,
    router,
    with_foreign_metadata,
    without_server_fields,
)
from tests.support.fake_kube import FakeApiServer

CONFIG = {
    "kind": "k8s-service",
    "service": "ranker",
    "baselineSelector": {"version": "2.3.1"},
    "candidateSelector": {"version": "2.4.0"},
}
RANKER: Object = {
    "metadata": {"name": "ranker"},
    "spec": {
        "selector": {"app": "ranker", "version": "2.3.1"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        "sessionAffinity": "ClientIP",
    },
}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def selector(api: FakeApiServer) -> dict[str, str]:
    return dict(Objects(api).get(SERVICE, "ranker")["spec"]["selector"])


def test_the_switch_both_ways_read_back_and_verified(api: FakeApiServer) -> None:
    Objects(api).create(SERVICE, with_foreign_metadata(RANKER))
    service = router(api, CONFIG)
    assert service.get_weights() == ALL_BASELINE

    service.set_weights(ALL_CANDIDATE)
    assert selector(api) == {"app": "ranker", "version": "2.4.0"}  # `app` is not ours: kept
    assert service.get_weights() == ALL_CANDIDATE and service.verify(ALL_CANDIDATE) is True
    service.set_weights(ALL_BASELINE)
    assert selector(api) == {"app": "ranker", "version": "2.3.1"}
    assert service.verify(ALL_CANDIDATE) is False


def test_a_split_is_refused_and_nothing_is_written(api: FakeApiServer) -> None:
    Objects(api).create(SERVICE, with_foreign_metadata(RANKER))
    with pytest.raises(RouterError, match="cannot split 90/10"):
        router(api, CONFIG).set_weights(Weights(90, 10))
    assert selector(api)["version"] == "2.3.1"
    assert not [r for r in api.requests if r.method == "PATCH"]


def test_only_the_selector_keys_we_own_change(api: FakeApiServer) -> None:
    before = Objects(api).create(SERVICE, with_foreign_metadata(RANKER))
    api.fail_next("PATCH", r"/services/ranker$", 409)
    router(api, CONFIG).set_weights(ALL_CANDIDATE)

    after = Objects(api).get(SERVICE, "ranker")
    expected = copy.deepcopy(before)
    expected["spec"]["selector"]["version"] = "2.4.0"
    assert without_server_fields(after) == without_server_fields(expected)
    assert [r.status for r in api.requests if r.method == "PATCH"] == [409, 200]


def test_a_selector_that_picks_neither_version_is_an_error(api: FakeApiServer) -> None:
    other = copy.deepcopy(RANKER)
    other["spec"]["selector"]["version"] = "1.9.0"
    Objects(api).create(SERVICE, with_foreign_metadata(other))
    with pytest.raises(RouterError, match=r"Service ml/ranker: spec\.selector .* selects neither"):
        router(api, CONFIG).get_weights()


def test_a_missing_service_is_named(api: FakeApiServer) -> None:
    with pytest.raises(RouterError, match=r"Service ml/ranker not found \(spec.router.service\)"):
        router(api, CONFIG).get_weights()


def test_a_selector_someone_else_switched_back_is_an_error(api: FakeApiServer) -> None:
    Objects(api).create(SERVICE, with_foreign_metadata(RANKER))
    service = router(api, CONFIG)
    service.set_weights(ALL_CANDIDATE)
    Objects(api).merge_patch(SERVICE, "ranker", {"spec": {"selector": {"version": "2.3.1"}}})
    with pytest.raises(RouterError) as caught:
        service.get_weights()
    assert 'spec.selector[\'version\'] is "2.3.1", but this rollout set "2.4.0"' in str(
        caught.value
    )


SPEC = {
    "apiVersion": "rollout.mlops.dev/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "ranker"},
    "spec": {
        "model": "ranker",
        "baseline": {"version": "2.3.1"},
        "candidate": {"version": "2.4.0"},
        "router": CONFIG,
        "prometheus": {"url": "http://127.0.0.1:9"},
    },
}
BLUE_GREEN = {"steps": [{"weight": 0, "hold": "10m"}]}


def test_validate_refuses_intermediate_steps_and_accepts_a_step_at_zero(tmp_path: Path) -> None:
    runner = CliRunner()
    canary = tmp_path / "canary.yaml"
    canary.write_text(yaml.safe_dump({**SPEC, "spec": {**SPEC["spec"], "policy": "default"}}))
    blue_green = tmp_path / "blue-green.yaml"
    blue_green.write_text(yaml.safe_dump({**SPEC, "spec": {**SPEC["spec"], "policy": BLUE_GREEN}}))

    refused = runner.invoke(app, ["policy", "validate", str(canary)])
    ran = runner.invoke(app, ["run", str(canary), "--state-dir", str(tmp_path / "state")])
    for result in (refused, ran):
        assert result.exit_code == 3, result.output
        output = " ".join(result.output.split())
        assert "spec.policy.steps: router kind 'k8s-service' switches all traffic at once" in output
        assert "[5, 25, 50]" in output
    accepted = runner.invoke(app, ["policy", "validate", str(blue_green)])
    assert accepted.exit_code == 0, accepted.output

    resource = {**SPEC, "metadata": {"name": "ranker", "namespace": "ml", "generation": 1}}
    judged = validate({**resource, "spec": {**SPEC["spec"], "policy": "default"}})
    assert isinstance(judged, Refused) and judged.problems[0].path == "spec.policy.steps"
    assert not isinstance(
        validate({**resource, "spec": {**SPEC["spec"], "policy": BLUE_GREEN}}), Refused
    )
