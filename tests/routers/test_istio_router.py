"""`istio` on the fake API server: a VirtualService's destination weights."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.istio import VIRTUAL_SERVICE
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
    "kind": "istio",
    "virtualService": "ranker",
    "baselineDestination": {"host": "ranker", "subset": "v1"},
    "candidateDestination": {"host": "ranker", "subset": "v2"},
}
SERVICE: Object = {
    "metadata": {"name": "ranker"},
    "spec": {
        "hosts": ["ranker"],
        "gateways": ["mesh"],
        "http": [
            {
                "name": "shadow-reads",  # another route: left alone
                "match": [{"uri": {"prefix": "/explain"}}],
                "route": [{"destination": {"host": "explainer"}}],
            },
            {
                "name": "primary",
                "retries": {"attempts": 3, "perTryTimeout": "2s"},
                "route": [
                    {
                        "destination": {"host": "ranker", "subset": "v1", "port": {"number": 80}},
                        "weight": 100,
                        "headers": {"response": {"add": {"x-served-by": "v1"}}},
                    },
                    {"destination": {"host": "ranker", "subset": "v2", "port": {"number": 80}}},
                ],
            },
        ],
    },
}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def create(api: FakeApiServer, service: Object = SERVICE) -> Object:
    return Objects(api).create(VIRTUAL_SERVICE, with_foreign_metadata(service))


def weights_of(obj: Object, route: int = 1) -> list[Any]:
    return [entry.get("weight") for entry in obj["spec"]["http"][route]["route"]]


def test_set_reads_back_and_verifies_always_summing_to_100(api: FakeApiServer) -> None:
    create(api)
    routes = router(api, CONFIG)
    assert routes.get_weights() == ALL_BASELINE  # v2's weight unset: 0 beside another

    for weights in (Weights(95, 5), Weights(60, 40), ALL_CANDIDATE, ALL_BASELINE):
        routes.set_weights(weights)
        assert routes.get_weights() == weights
        assert routes.verify(weights) is True
        stored = weights_of(Objects(api).get(VIRTUAL_SERVICE, "ranker"))
        assert stored == [weights.baseline, weights.candidate] and sum(stored) == 100


def test_only_our_two_weights_change_everything_else_survives(api: FakeApiServer) -> None:
    before = create(api)
    router(api, CONFIG).set_weights(Weights(70, 30))

    after = Objects(api).get(VIRTUAL_SERVICE, "ranker")
    expected = copy.deepcopy(before)
    expected["spec"]["http"][1]["route"][0]["weight"] = 70
    expected["spec"]["http"][1]["route"][1]["weight"] = 30
    assert without_server_fields(after) == without_server_fields(expected)


def test_409s_are_retried(api: FakeApiServer) -> None:
    create(api)
    api.fail_next("PATCH", r"/virtualservices/ranker$", 409, times=3)
    router(api, CONFIG).set_weights(Weights(90, 10))
    assert weights_of(Objects(api).get(VIRTUAL_SERVICE, "ranker")) == [90, 10]
    assert [r.status for r in api.requests if r.method == "PATCH"] == [409, 409, 409, 200]


def test_a_missing_virtual_service_is_named(api: FakeApiServer) -> None:
    with pytest.raises(RouterError, match=r"VirtualService ml/ranker not found \(spec.router"):
        router(api, CONFIG).set_weights(Weights(90, 10))


def test_a_route_without_the_baseline_destination_is_refused(api: FakeApiServer) -> None:
    service = copy.deepcopy(SERVICE)
    service["spec"]["http"][1]["route"][0]["destination"]["subset"] = "v0"
    create(api, service)
    with pytest.raises(RouterError) as caught:
        router(api, CONFIG).get_weights()
    assert "VirtualService ml/ranker: spec.http[1].route has no baseline destination" in str(
        caught.value
    )
    assert "ranker subset v1" in str(caught.value)


def test_weights_someone_else_changed_are_an_error_naming_the_field(api: FakeApiServer) -> None:
    create(api)
    routes = router(api, CONFIG)
    routes.set_weights(Weights(80, 20))
    http = Objects(api).get(VIRTUAL_SERVICE, "ranker")["spec"]["http"]
    http[1]["route"][0]["weight"] = 50
    http[1]["route"][1]["weight"] = 50
    Objects(api).merge_patch(VIRTUAL_SERVICE, "ranker", {"spec": {"http": http}})

    with pytest.raises(RouterError) as caught:
        routes.get_weights()
    message = str(caught.value)
    assert "VirtualService ml/ranker: spec.http[1].route[0].weight is 50" in message
    assert "this rollout set 80" in message
    with pytest.raises(RouterError, match="someone else changed the weights"):
        routes.set_weights(Weights(50, 50))


def test_routes_that_disagree_are_refused_and_a_named_route_is_driven_alone(
    api: FakeApiServer,
) -> None:
    service = copy.deepcopy(SERVICE)
    canary = copy.deepcopy(service["spec"]["http"][1])
    canary["name"] = "canary-header"
    canary["match"] = [{"headers": {"x-canary": {"exact": "1"}}}]
    canary["route"][0]["weight"] = 0
    canary["route"][1]["weight"] = 100
    service["spec"]["http"].insert(1, canary)
    create(api, service)

    with pytest.raises(RouterError, match="split the traffic differently"):
        router(api, CONFIG).get_weights()
    named = router(api, {**CONFIG, "route": "primary"})
    named.set_weights(Weights(75, 25))
    stored = Objects(api).get(VIRTUAL_SERVICE, "ranker")
    assert weights_of(stored, 2) == [75, 25]
    assert weights_of(stored, 1) == [0, 100]  # the header route stays where it was
    assert named.get_weights() == Weights(75, 25)
