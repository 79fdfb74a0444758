"""The registry: one module per kind, the spec's union and the CRD built from it."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest
from pydantic import TypeAdapter, ValidationError

from rollout import spec
from rollout.k8s.crd import crd_document
from rollout.routers import build_router, router_kinds
from rollout.routers.base import RouterError, RouterPlace, kind_of
from rollout.routers.haproxy import HAProxyRouter
from rollout.routers.k8s_router import KubeRouter
from rollout.routers.registry import KINDS, REFUSED, union_tags

ROUTER_CONFIG: TypeAdapter[spec.RouterConfig] = TypeAdapter(spec.RouterConfig)


def no_cluster() -> typing.NoReturn:
    raise RouterError("no cluster in this test")


PLACE = RouterPlace("ml", no_cluster)
# A minimal `router` block of every kind (the README's Routers table shows the same).
MINIMAL = {
    "haproxy": {
        "adminSocket": "127.0.0.1:9999",
        "backend": "model",
        "baselineServer": "blue",
        "candidateServer": "green",
    },
    "gateway-api": {"httpRoute": "fraud", "baselineBackend": "v1", "candidateBackend": "v2"},
    "istio": {
        "virtualService": "fraud",
        "baselineDestination": {"host": "fraud", "subset": "v1"},
        "candidateDestination": {"host": "fraud", "subset": "v2"},
    },
    "nginx-ingress": {"canaryIngress": "fraud-canary"},
    "kserve": {"inferenceService": "fraud"},
    "k8s-service": {
        "service": "fraud",
        "baselineSelector": {"version": "v1"},
        "candidateSelector": {"version": "v2"},
    },
}


def test_haproxy_kind_builds_an_haproxy_router_on_the_configured_socket() -> None:
    config = ROUTER_CONFIG.validate_python({"kind": "haproxy", **MINIMAL["haproxy"]})

    router = build_router(config, PLACE)

    assert isinstance(router, HAProxyRouter)
    assert router.config == config
    assert str(router.address) == "TCP socket 127.0.0.1:9999"


@pytest.mark.parametrize("kind", sorted(set(MINIMAL) - {"haproxy"}))
def test_kubernetes_kinds_act_on_their_object_in_the_rollouts_namespace(kind: str) -> None:
    router = build_router(ROUTER_CONFIG.validate_python({"kind": kind, **MINIMAL[kind]}), PLACE)

    assert isinstance(router, KubeRouter)
    assert router.ref.namespace == "ml"
    assert router.ref.name == ("fraud-canary" if kind == "nginx-ingress" else "fraud")
    with pytest.raises(RouterError, match="no cluster in this test"):
        router.get_weights()  # the client is made on first use, from the place


def test_a_namespace_in_the_router_block_wins() -> None:
    config = ROUTER_CONFIG.validate_python(
        {"kind": "gateway-api", **MINIMAL["gateway-api"], "namespace": "edge"}
    )
    router = build_router(config, PLACE)
    assert isinstance(router, KubeRouter) and router.ref.namespace == "edge"


def test_the_spec_union_crd_and_kinds_all_come_from_the_registry() -> None:
    union = typing.get_args(typing.get_args(spec.RouterConfig)[0])
    assert set(union) == {kind.config for kind in KINDS} | set(REFUSED)
    assert set(router_kinds()) == set(MINIMAL)  # every kind a rollout can run with, tested
    (version,) = crd_document()["spec"]["versions"]
    router = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["router"]
    assert router["properties"]["kind"]["enum"] == list(union_tags())
    assert union_tags() == (*router_kinds(), *(kind_of(config) for config in REFUSED))


@dataclass(frozen=True)
class UnknownConfig:
    kind: str = "linkerd"


def test_unknown_kind_is_refused_naming_the_field_and_the_known_kinds() -> None:
    with pytest.raises(spec.SpecError) as error:
        build_router(UnknownConfig(), PLACE)  # type: ignore[arg-type]

    assert "spec.router.kind" in str(error.value)
    assert "'linkerd'" in str(error.value)
    assert ", ".join(router_kinds()) in str(error.value)


def test_spec_files_refuse_unknown_kinds_before_any_router_is_built() -> None:
    with pytest.raises(ValidationError, match="linkerd"):
        ROUTER_CONFIG.validate_python({"kind": "linkerd"})


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"kind": "gateway-api", "httpRoute": "Fraud_Route"}, "httpRoute"),
        (
            {"kind": "gateway-api", **MINIMAL["gateway-api"], "candidateBackend": "v1"},
            "different Services",
        ),
        ({"kind": "istio", **MINIMAL["istio"], "virtualservice": "x"}, "virtualservice"),
        (
            {"kind": "k8s-service", **MINIMAL["k8s-service"], "candidateSelector": {"app": "x"}},
            "same label keys",
        ),
        (
            {"kind": "k8s-service", **MINIMAL["k8s-service"], "baselineSelector": {"v": "a b"}},
            "not a label value",
        ),
    ],
)
def test_bad_router_blocks_are_refused_naming_the_field(
    block: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        ROUTER_CONFIG.validate_python(block)
