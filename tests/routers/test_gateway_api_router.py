"""`gateway-api` on the fake API server: an HTTPRoute's backendRefs weights."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.gateway_api import HTTP_ROUTE
from rollout.routers.k8s_objects import KubeObjects, ObjectRef
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
    "kind": "gateway-api",
    "httpRoute": "ranker",
    "baselineBackend": "ranker-v1",
    "candidateBackend": "ranker-v2",
}
ROUTE: Object = {
    "metadata": {"name": "ranker"},
    "spec": {
        "parentRefs": [{"name": "inference-gateway", "sectionName": "http"}],
        "hostnames": ["ranker.example.com"],
        "x-vendor-extension": {"keep": True},  # a field this client knows nothing of
        "rules": [
            {  # another service's rule: not ours, left alone
                "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                "backendRefs": [{"name": "admin", "port": 80}],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"add": [{"name": "x-a", "value": "1"}]},
                    }
                ],
                "backendRefs": [
                    {"name": "ranker-v1", "port": 8000},  # weight unset: 1
                    {"name": "ranker-v2", "port": 8000, "weight": 0},
                ],
                "timeouts": {"request": "10s"},
            },
        ],
    },
}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def create(api: FakeApiServer, route: Object = ROUTE) -> Object:
    return Objects(api).create(HTTP_ROUTE, with_foreign_metadata(route))


def weights_of(obj: Object, rule: int = 1) -> list[Any]:
    return [ref.get("weight") for ref in obj["spec"]["rules"][rule]["backendRefs"]]


def test_set_reads_back_and_verifies_through_the_steps(api: FakeApiServer) -> None:
    create(api)
    routes = router(api, CONFIG)
    assert routes.get_weights() == ALL_BASELINE  # unset (1) against 0

    for weights in (Weights(90, 10), Weights(50, 50), ALL_CANDIDATE, ALL_BASELINE):
        routes.set_weights(weights)
        assert routes.get_weights() == weights
        assert routes.verify(weights) is True
        assert routes.verify(Weights(70, 30)) is False
        stored = Objects(api).get(HTTP_ROUTE, "ranker")
        assert weights_of(stored) == [weights.baseline, weights.candidate]  # sums to 100


def test_only_our_two_weights_change_everything_else_survives(api: FakeApiServer) -> None:
    before = create(api)
    router(api, CONFIG).set_weights(Weights(75, 25))

    after = Objects(api).get(HTTP_ROUTE, "ranker")
    expected = copy.deepcopy(before)
    expected["spec"]["rules"][1]["backendRefs"][0]["weight"] = 75
    expected["spec"]["rules"][1]["backendRefs"][1]["weight"] = 25
    assert without_server_fields(after) == without_server_fields(expected)


class RacingObjects:
    """The router's API access, with someone else writing the route right after the
    router's first read: the router's write then meets a real 409 from the server."""

    def __init__(self, inner: KubeObjects, race: Callable[[], object]) -> None:
        self.inner = inner
        self.race: Callable[[], object] | None = race

    def get(self, ref: ObjectRef) -> Object:
        found = self.inner.get(ref)
        if self.race is not None:
            self.race, race = None, self.race
            race()
        return found

    def merge_patch(self, ref: ObjectRef, patch: Object) -> Object:
        return self.inner.merge_patch(ref, patch)


def test_a_write_over_a_change_since_read_gets_409_reads_again_and_keeps_that_change(
    api: FakeApiServer,
) -> None:
    create(api)
    routes = router(api, CONFIG)
    label = {"metadata": {"labels": {"new": "yes"}}}
    racing = RacingObjects(
        routes.objects, lambda: Objects(api).merge_patch(HTTP_ROUTE, "ranker", label)
    )
    routes.objects = racing  # type: ignore[assignment]

    routes.set_weights(Weights(80, 20))

    stored = Objects(api).get(HTTP_ROUTE, "ranker")
    assert weights_of(stored) == [80, 20]
    assert stored["metadata"]["labels"]["new"] == "yes"  # the other writer's change stays
    ours = [r.status for r in api.requests if r.method == "PATCH"]
    assert ours == [200, 409, 200]  # theirs, our stale write, our write after reading again


def test_injected_409s_are_retried(api: FakeApiServer) -> None:
    create(api)
    api.fail_next("PATCH", r"/httproutes/ranker$", 409, times=2)
    router(api, CONFIG).set_weights(Weights(80, 20))
    assert weights_of(Objects(api).get(HTTP_ROUTE, "ranker")) == [80, 20]
    assert [r.status for r in api.requests if r.method == "PATCH"] == [409, 409, 200]


def test_conflicts_that_never_end_are_an_error_not_a_silent_pass(api: FakeApiServer) -> None:
    create(api)
    api.fail_next("PATCH", r"/httproutes/ranker$", 409, times=100)
    with pytest.raises(RouterError, match="HTTPRoute ml/ranker: 5 writes in a row refused"):
        router(api, CONFIG).set_weights(Weights(80, 20))


def test_a_missing_route_is_named_with_the_field(api: FakeApiServer) -> None:
    with pytest.raises(RouterError) as caught:
        router(api, CONFIG).get_weights()
    assert "HTTPRoute ml/ranker not found (spec.router.httpRoute)" in str(caught.value)
    assert router(api, CONFIG).verify(ALL_BASELINE) is None


def test_a_route_without_the_candidate_backend_is_refused_before_any_write(
    api: FakeApiServer,
) -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"][1]["backendRefs"].pop()
    create(api, route)
    routes = router(api, CONFIG)

    for call in (routes.get_weights, lambda: routes.set_weights(Weights(90, 10))):
        with pytest.raises(RouterError) as caught:
            call()
        message = str(caught.value)
        assert "HTTPRoute ml/ranker: spec.rules[1].backendRefs has no candidate backend" in message
        assert "'ranker-v2'" in message
    assert not [r for r in api.requests if r.method == "PATCH"]


def test_weights_someone_else_changed_are_an_error_naming_the_field(api: FakeApiServer) -> None:
    create(api)
    routes = router(api, CONFIG)
    routes.set_weights(Weights(90, 10))
    changed = copy.deepcopy(Objects(api).get(HTTP_ROUTE, "ranker")["spec"]["rules"])
    changed[1]["backendRefs"][1]["weight"] = 60  # kubectl edit, a GitOps sync...
    Objects(api).merge_patch(HTTP_ROUTE, "ranker", {"spec": {"rules": changed}})

    for call in (routes.get_weights, lambda: routes.set_weights(Weights(75, 25))):
        with pytest.raises(RouterError) as caught:
            call()
        message = str(caught.value)
        assert "HTTPRoute ml/ranker: spec.rules[1].backendRefs[1].weight is 60" in message
        assert "this rollout set 10: someone else changed the weights" in message
    assert weights_of(Objects(api).get(HTTP_ROUTE, "ranker")) == [90, 60]  # not overwritten

    routes.set_weights(ALL_BASELINE)  # a rollback still goes through
    assert routes.get_weights() == ALL_BASELINE


def test_a_third_backend_with_traffic_makes_the_split_unreadable(api: FakeApiServer) -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"][1]["backendRefs"].append({"name": "ranker-shadow", "port": 8000})
    create(api, route)
    with pytest.raises(RouterError, match=r"spec.rules\[1\].backendRefs\[2\] \('ranker-shadow'\)"):
        router(api, CONFIG).get_weights()


def test_rules_that_disagree_are_refused_and_a_named_rule_is_driven_alone(
    api: FakeApiServer,
) -> None:
    route = copy.deepcopy(ROUTE)
    second = copy.deepcopy(route["spec"]["rules"][1])
    second["name"] = "canary"
    second["backendRefs"][0]["weight"] = 1
    second["backendRefs"][1]["weight"] = 1
    route["spec"]["rules"].append(second)
    create(api, route)

    with pytest.raises(RouterError, match="split the traffic differently"):
        router(api, CONFIG).get_weights()
    named = router(api, {**CONFIG, "rule": "canary"})
    assert named.get_weights() == Weights(50, 50)
    named.set_weights(Weights(95, 5))
    stored = Objects(api).get(HTTP_ROUTE, "ranker")
    assert weights_of(stored, 2) == [95, 5]
    assert weights_of(stored, 1) == [None, 0]  # the other rule untouched
