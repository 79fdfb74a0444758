"""`kserve` on the fake API server, with a fake of KServe's controller writing the status
(tests/routers/fake_kserve.py): the router writes canaryTrafficPercent and reads the traffic
back only from the status KServe writes for that spec."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator

import pytest

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.kserve import INFERENCE_SERVICE, MODE
from tests.routers.fake_kserve import FakeKServe
from tests.routers.kube_bench import (
    NAMESPACE,
    Object,
    Objects,
    fake_api,
    router,
    with_foreign_metadata,
    without_server_fields,
)
from tests.support.fake_kube import FakeApiServer

CONFIG = {"kind": "kserve", "inferenceService": "ranker"}


def predictor(uri: str) -> dict[str, object]:
    return {
        "minReplicas": 1,
        "model": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": uri,
            "resources": {"limits": {"memory": "2Gi"}},
        },
    }


SERVICE: Object = {"metadata": {"name": "ranker"}, "spec": {"predictor": predictor("gs://m/2.3.1")}}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def deploy_candidate(api: FakeApiServer, service: Object = SERVICE) -> FakeKServe:
    """The baseline rolled out, then the candidate deployed at 0% (the user's two applies)."""
    Objects(api).create(INFERENCE_SERVICE, with_foreign_metadata(service))
    kserve = FakeKServe(api, NAMESPACE, "ranker")
    kserve.sync()
    candidate = {**predictor("gs://m/2.4.0"), "canaryTrafficPercent": 0}
    Objects(api).merge_patch(INFERENCE_SERVICE, "ranker", {"spec": {"predictor": candidate}})
    kserve.sync()
    return kserve


def test_the_read_back_waits_for_kserves_status_then_confirms(api: FakeApiServer) -> None:
    kserve = deploy_candidate(api)
    isvc = router(api, CONFIG)
    assert isvc.get_weights() == ALL_BASELINE

    for weights in (Weights(90, 10), Weights(50, 50), ALL_CANDIDATE):
        isvc.set_weights(weights)
        with pytest.raises(RouterError, match=r"waiting for KServe: status\.observedGeneration"):
            isvc.get_weights()  # the spec says it, KServe does not yet: not read as done
        assert isvc.verify(weights) is None
        kserve.sync()
        assert isvc.get_weights() == weights
        assert isvc.verify(weights) is True
    stored = Objects(api).get(INFERENCE_SERVICE, "ranker")
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert stored["status"]["components"]["predictor"]["latestRolledoutRevision"].endswith("00002")


def test_a_rollback_pins_the_traffic_to_the_rolled_out_revision(api: FakeApiServer) -> None:
    kserve = deploy_candidate(api)
    isvc = router(api, CONFIG)
    isvc.set_weights(Weights(75, 25))
    kserve.sync()
    isvc.set_weights(ALL_BASELINE)
    kserve.sync()
    assert isvc.get_weights() == ALL_BASELINE
    traffic = Objects(api).get(INFERENCE_SERVICE, "ranker")["status"]["components"]["predictor"]
    assert [(t["revisionName"][-5:], t["percent"]) for t in traffic["traffic"]] == [
        ("00002", 0),
        ("00001", 100),
    ]


def test_with_kserve_reconciling_on_its_own_the_router_confirms_once_it_has(
    api: FakeApiServer,
) -> None:
    kserve = deploy_candidate(api).run(every=0.2)
    try:
        isvc = router(api, CONFIG)
        isvc.set_weights(Weights(80, 20))
        deadline = time.monotonic() + 30
        while isvc.verify(Weights(80, 20)) is not True:  # the engine retries its read-back
            assert time.monotonic() < deadline, "KServe never reported the new traffic"
            time.sleep(0.1)
    finally:
        kserve.stop()


def test_only_canary_traffic_percent_changes_everything_else_survives(api: FakeApiServer) -> None:
    deploy_candidate(api)
    before = Objects(api).get(INFERENCE_SERVICE, "ranker")
    router(api, CONFIG).set_weights(Weights(70, 30))

    after = Objects(api).get(INFERENCE_SERVICE, "ranker")
    expected = copy.deepcopy(before)
    expected["spec"]["predictor"]["canaryTrafficPercent"] = 30
    assert without_server_fields(after) == without_server_fields(expected)


def test_409s_are_retried(api: FakeApiServer) -> None:
    deploy_candidate(api)
    api.fail_next("PATCH", r"/inferenceservices/ranker$", 409, times=2)
    router(api, CONFIG).set_weights(Weights(90, 10))
    stored = Objects(api).get(INFERENCE_SERVICE, "ranker")
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 10


def test_a_missing_inference_service_is_named(api: FakeApiServer) -> None:
    with pytest.raises(RouterError, match=r"InferenceService ml/ranker not found \(spec.router"):
        router(api, CONFIG).get_weights()


def test_raw_deployment_mode_is_refused_naming_the_annotation(api: FakeApiServer) -> None:
    raw = copy.deepcopy(SERVICE)
    raw["metadata"]["annotations"] = {MODE: "RawDeployment"}
    Objects(api).create(INFERENCE_SERVICE, with_foreign_metadata(raw))
    isvc = router(api, CONFIG)
    for call in (isvc.get_weights, lambda: isvc.set_weights(Weights(90, 10))):
        with pytest.raises(RouterError) as caught:
            call()
        assert f"metadata.annotations['{MODE}'] is 'RawDeployment'" in str(caught.value)
        assert "only in Serverless mode" in str(caught.value)


def test_no_candidate_revision_is_refused_with_the_fix(api: FakeApiServer) -> None:
    Objects(api).create(INFERENCE_SERVICE, with_foreign_metadata(SERVICE))
    FakeKServe(api, NAMESPACE, "ranker").sync()
    with pytest.raises(RouterError) as caught:
        router(api, CONFIG).get_weights()
    assert "no candidate revision" in str(caught.value)
    assert "canaryTrafficPercent: 0" in str(caught.value)


def test_a_percent_someone_else_changed_is_an_error_naming_the_field(api: FakeApiServer) -> None:
    kserve = deploy_candidate(api)
    isvc = router(api, CONFIG)
    isvc.set_weights(Weights(90, 10))
    kserve.sync()
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 50}}}
    Objects(api).merge_patch(INFERENCE_SERVICE, "ranker", patch)
    kserve.sync()

    with pytest.raises(RouterError) as caught:
        isvc.get_weights()
    message = str(caught.value)
    assert "InferenceService ml/ranker: spec.predictor.canaryTrafficPercent is 50" in message
    assert "this rollout set 10" in message
