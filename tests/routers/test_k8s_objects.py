"""The Kubernetes routers' shared core: the merge patch of a change, and the API's refusals
as errors that name the object and say what to do."""

from __future__ import annotations

import socket
import typing
from collections.abc import Iterator

import pytest
from kubernetes import client

from rollout.routers.base import RouterError, Weights
from rollout.routers.k8s_objects import merge_diff
from tests.routers.kube_bench import NAMESPACE, fake_api, router
from tests.support.fake_kube import FakeApiServer

GATEWAY = {
    "kind": "gateway-api",
    "httpRoute": "ranker",
    "baselineBackend": "ranker-v1",
    "candidateBackend": "ranker-v2",
}


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2, "d": 4}}, {"b": {"d": 4}}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),  # a removed key is null
        ({"a": [1, 2]}, {"a": [1, 3]}, {"a": [1, 3]}),  # a list goes whole
        ({"a": {"x": 1}}, {"a": {"x": 1}, "n": {"y": 2}}, {"n": {"y": 2}}),
        ({"a": 1}, {"a": 1}, {}),  # nothing to write
    ],
)
def test_merge_diff_is_the_patch_from_old_to_new(
    old: dict[str, typing.Any], new: dict[str, typing.Any], patch: dict[str, typing.Any]
) -> None:
    assert merge_diff(old, new) == patch


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def test_a_forbidden_answer_names_the_role_to_apply(api: FakeApiServer) -> None:
    api.fail_next("GET", r"/httproutes/ranker$", 403)
    with pytest.raises(RouterError) as caught:
        router(api, GATEWAY).get_weights()
    assert f"HTTPRoute {NAMESPACE}/ranker: 403" in str(caught.value)
    assert "manifests/routers/rbac-gateway-api.yaml" in str(caught.value)


def test_a_kind_the_server_does_not_serve_asks_whether_its_crd_is_installed() -> None:
    with FakeApiServer() as bare:  # no Gateway API CRDs
        place_router = router(bare, GATEWAY)
        with pytest.raises(RouterError) as caught:
            place_router.get_weights()
    assert "does not serve httproutes in gateway.networking.k8s.io/v1" in str(caught.value)
    assert "is the HTTPRoute CRD installed?" in str(caught.value)


def test_an_unreachable_api_is_a_router_error_not_a_crash() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = False

    class Nowhere:
        url = configuration.host

        def api_client(self) -> client.ApiClient:
            return client.ApiClient(configuration)

    unreachable = router(Nowhere(), GATEWAY)  # type: ignore[arg-type]
    with pytest.raises(RouterError, match="cannot reach the Kubernetes API"):
        unreachable.set_weights(Weights(90, 10))
    assert unreachable.verify(Weights(90, 10)) is None
