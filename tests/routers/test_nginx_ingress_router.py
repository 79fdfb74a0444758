"""`nginx-ingress` on the fake API server: the canary Ingress's annotations."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.nginx_ingress import CANARY, INGRESS, TOTAL, WEIGHT
from tests.routers.kube_bench import (
    Object,
    Objects,
    fake_api,
    router,
    with_foreign_metadata,
    without_server_fields,
)
from tests.support.fake_kube import FakeApiServer

CONFIG = {"kind": "nginx-ingress", "canaryIngress": "ranker-canary"}


def ingress(name: str, service: str, annotations: dict[str, str] | None = None) -> Object:
    return {
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["ranker.example.com"], "secretName": "ranker-tls"}],
            "rules": [
                {
                    "host": "ranker.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


MAIN = ingress("ranker", "ranker-v1", {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"})
CANARY_INGRESS = ingress("ranker-canary", "ranker-v2", {CANARY: "true", WEIGHT: "0"})


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def create(api: FakeApiServer, *objects: Object) -> list[Object]:
    return [Objects(api).create(INGRESS, with_foreign_metadata(o)) for o in objects]


def annotation(api: FakeApiServer, key: str, name: str = "ranker-canary") -> str | None:
    found = Objects(api).get(INGRESS, name)["metadata"]["annotations"].get(key)
    return str(found) if found is not None else None


def test_set_reads_back_and_verifies(api: FakeApiServer) -> None:
    create(api, MAIN, CANARY_INGRESS)
    canary = router(api, CONFIG)
    assert canary.get_weights() == ALL_BASELINE

    for weights in (Weights(90, 10), Weights(50, 50), ALL_CANDIDATE, ALL_BASELINE):
        canary.set_weights(weights)
        assert canary.get_weights() == weights
        assert canary.verify(weights) is True
        assert annotation(api, WEIGHT) == str(weights.candidate)
        assert annotation(api, CANARY) == "true"


def test_a_weight_total_is_honoured(api: FakeApiServer) -> None:
    create(api, MAIN, ingress("ranker-canary", "ranker-v2", {CANARY: "true", TOTAL: "1000"}))
    canary = router(api, CONFIG)
    canary.set_weights(Weights(75, 25))
    assert annotation(api, WEIGHT) == "250"
    assert canary.get_weights() == Weights(75, 25)


def test_only_our_annotations_change_everything_else_survives(api: FakeApiServer) -> None:
    main, before = create(api, MAIN, CANARY_INGRESS)
    router(api, CONFIG).set_weights(Weights(80, 20))

    after = Objects(api).get(INGRESS, "ranker-canary")
    expected = copy.deepcopy(before)
    expected["metadata"]["annotations"][WEIGHT] = "20"
    assert without_server_fields(after) == without_server_fields(expected)
    assert Objects(api).get(INGRESS, "ranker") == main  # the main Ingress is never written


def test_409s_are_retried(api: FakeApiServer) -> None:
    create(api, MAIN, CANARY_INGRESS)
    api.fail_next("PATCH", r"/ingresses/ranker-canary$", 409, times=2)
    router(api, CONFIG).set_weights(Weights(90, 10))
    assert annotation(api, WEIGHT) == "10"


def test_a_missing_canary_ingress_is_named(api: FakeApiServer) -> None:
    create(api, MAIN)
    with pytest.raises(RouterError, match=r"Ingress ml/ranker-canary not found \(spec.router"):
        router(api, CONFIG).get_weights()


def test_a_canary_without_its_main_ingress_has_no_baseline(api: FakeApiServer) -> None:
    create(api, CANARY_INGRESS)
    canary = router(api, CONFIG)
    for call in (canary.get_weights, lambda: canary.set_weights(Weights(90, 10))):
        with pytest.raises(RouterError) as caught:
            call()
        assert "no main Ingress" in str(caught.value)
        assert "host ranker.example.com path /" in str(caught.value)
    assert annotation(api, WEIGHT) == "0"


def test_a_second_canary_on_the_same_rule_is_refused(api: FakeApiServer) -> None:
    other = ingress("ranker-canary-old", "ranker-v0", {CANARY: "true", WEIGHT: "5"})
    create(api, MAIN, CANARY_INGRESS, other)
    with pytest.raises(RouterError) as caught:
        router(api, CONFIG).get_weights()
    assert "Ingress ml/ranker-canary-old is also a canary" in str(caught.value)
    assert "at most one canary Ingress per rule" in str(caught.value)


def test_an_ingress_that_is_not_a_canary_is_refused_with_the_fix(api: FakeApiServer) -> None:
    create(api, MAIN, ingress("ranker-canary", "ranker-v2"))
    with pytest.raises(RouterError) as caught:
        router(api, CONFIG).get_weights()
    assert "Ingress ml/ranker-canary is not a canary" in str(caught.value)
    assert f'{CANARY}: "true"' in str(caught.value)


def test_weights_someone_else_changed_are_an_error_naming_the_annotation(
    api: FakeApiServer,
) -> None:
    create(api, MAIN, CANARY_INGRESS)
    canary = router(api, CONFIG)
    canary.set_weights(Weights(90, 10))
    Objects(api).merge_patch(
        INGRESS, "ranker-canary", {"metadata": {"annotations": {WEIGHT: "40"}}}
    )

    with pytest.raises(RouterError) as caught:
        canary.set_weights(Weights(50, 50))
    message = str(caught.value)
    assert f"Ingress ml/ranker-canary: metadata.annotations['{WEIGHT}'] is \"40\"" in message
    assert 'this rollout set "10"' in message
    assert annotation(api, WEIGHT) == "40"
