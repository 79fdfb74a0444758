"""The routers' optional RBAC (manifests/routers/): one ClusterRole per Kubernetes router kind,
granting exactly the permissions that router's requests need, measured by running it (read,
write, verify, a missing object) against the fake API server and mapping each request it
made to (apiGroup, resource, verb)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import models

from rollout.routers import router_kinds
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights
from rollout.routers.gateway_api import HTTP_ROUTE
from rollout.routers.istio import VIRTUAL_SERVICE
from rollout.routers.k8s_objects import Resource
from rollout.routers.k8s_service import SERVICE
from rollout.routers.nginx_ingress import INGRESS
from tests.routers import (
    test_gateway_api_router,
    test_istio_router,
    test_k8s_service_router,
    test_kserve_router,
    test_nginx_ingress_router,
)
from tests.routers.kube_bench import (
    Objects,
    fake_api,
    others_requests,
    router,
    with_foreign_metadata,
)
from tests.support.fake_kube import FakeApiServer

ROUTERS = Path(__file__).resolve().parents[2] / "manifests" / "routers"
SYSTEM = Path(__file__).resolve().parents[2] / "manifests" / "rbac.yaml"
Permission = tuple[str, str, str]  # apiGroup, resource, verb
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<plural>[^/]+)(?P<name>/[^/]+)?$"
)
_VERBS = {"PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}


def setup_kserve(api: FakeApiServer) -> None:
    test_kserve_router.deploy_candidate(api)


def objects_of(*pairs: tuple[Resource, dict[str, Any]]) -> Callable[[FakeApiServer], None]:
    def create(api: FakeApiServer) -> None:
        for resource, obj in pairs:
            Objects(api).create(resource, with_foreign_metadata(obj))

    return create


# kind -> (its router block, what a user has created before the rollout)
SETUPS: dict[str, tuple[dict[str, Any], Callable[[FakeApiServer], None]]] = {
    "gateway-api": (
        test_gateway_api_router.CONFIG,
        objects_of((HTTP_ROUTE, test_gateway_api_router.ROUTE)),
    ),
    "istio": (
        test_istio_router.CONFIG,
        objects_of((VIRTUAL_SERVICE, test_istio_router.SERVICE)),
    ),
    "nginx-ingress": (
        test_nginx_ingress_router.CONFIG,
        objects_of(
            (INGRESS, test_nginx_ingress_router.MAIN),
            (INGRESS, test_nginx_ingress_router.CANARY_INGRESS),
        ),
    ),
    "kserve": (test_kserve_router.CONFIG, setup_kserve),
    "k8s-service": (
        test_k8s_service_router.CONFIG,
        objects_of((SERVICE, test_k8s_service_router.RANKER)),
    ),
}
NAME_FIELDS = ("httpRoute", "virtualService", "canaryIngress", "inferenceService", "service")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def granted(kind: str) -> set[Permission]:
    [role] = [d for d in documents(ROUTERS / f"rbac-{kind}.yaml") if d["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def used(api: FakeApiServer, since: int) -> set[Permission]:
    permissions = set()
    for request in api.requests[since:]:
        match = _PATH.match(request.path)
        assert match is not None, f"a request outside a namespace: {request}"
        verb = _VERBS.get(request.method) or ("get" if match["name"] else "list")
        permissions.add((match["group"] or "", match["plural"], verb))
    return permissions


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with fake_api() as server:
        yield server


def test_there_is_one_role_for_each_kubernetes_router_kind() -> None:
    files = {p.name for p in ROUTERS.glob("*.yaml")}
    assert files == {f"rbac-{kind}.yaml" for kind in SETUPS}
    assert set(SETUPS) == set(router_kinds()) - {"haproxy"}  # HAProxy needs no API access


@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_each_role_grants_exactly_what_its_router_uses(api: FakeApiServer, kind: str) -> None:
    config, setup = SETUPS[kind]
    setup(api)
    since = others_requests(api)  # no router request was sent yet
    missing = {k: ("gone" if k in NAME_FIELDS else v) for k, v in config.items()}
    assert router(api, missing).verify(ALL_BASELINE) is None  # a missing object
    routed = router(api, config)
    routed.get_weights()
    moved = ALL_CANDIDATE if kind == "k8s-service" else Weights(90, 10)  # 0/100 only there
    routed.set_weights(moved)
    routed.verify(moved)
    routed.set_weights(ALL_BASELINE)

    assert used(api, since) == granted(kind)


@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_each_role_is_valid_and_bound_to_the_controllers_account(kind: str) -> None:
    account = next(d for d in documents(SYSTEM) if d["kind"] == "ServiceAccount")
    docs = documents(ROUTERS / f"rbac-{kind}.yaml")
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding"]
    role, binding = docs
    for doc in docs:
        getattr(models, f"V1{doc['kind']}").model_validate(doc)  # no misspelt field
    assert role["metadata"]["name"] == f"model-rollout-router-{kind}"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert "*" not in yaml.safe_dump(role["rules"])
