"""build_router: one factory per `kind`, and nothing for an unknown kind."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest
from pydantic import TypeAdapter, ValidationError

from rollout import spec
from rollout.routers import build_router, router_kinds
from rollout.routers.haproxy import HAProxyRouter
from rollout.routers.nop import NopRouter

ROUTER_CONFIG: TypeAdapter[spec.RouterConfig] = TypeAdapter(spec.RouterConfig)


def test_haproxy_kind_builds_an_haproxy_router_on_the_configured_socket() -> None:
    config = ROUTER_CONFIG.validate_python(
        {
            "kind": "haproxy",
            "adminSocket": "127.0.0.1:9999",
            "backend": "model",
            "baselineServer": "blue",
            "candidateServer": "green",
        }
    )

    router = build_router(config)

    assert isinstance(router, HAProxyRouter)
    assert router.config == config
    assert str(router.address) == "TCP socket 127.0.0.1:9999"


def test_nop_kind_builds_the_gate_router() -> None:
    assert isinstance(build_router(ROUTER_CONFIG.validate_python({"kind": "nop"})), NopRouter)


def test_every_kind_a_spec_accepts_has_a_router() -> None:
    union = typing.get_args(typing.get_args(spec.RouterConfig)[0])
    kinds = {typing.get_args(model.model_fields["kind"].annotation)[0] for model in union}
    assert kinds == set(router_kinds())


@dataclass(frozen=True)
class IstioConfig:
    kind: str = "istio"


def test_unknown_kind_is_refused_naming_the_field_and_the_known_kinds() -> None:
    with pytest.raises(spec.SpecError) as error:
        build_router(IstioConfig())  # type: ignore[arg-type]

    assert "spec.router.kind" in str(error.value)
    assert "'istio'" in str(error.value)
    assert "haproxy, nop" in str(error.value)


def test_spec_files_refuse_unknown_kinds_before_any_router_is_built() -> None:
    with pytest.raises(ValidationError, match="istio"):
        ROUTER_CONFIG.validate_python({"kind": "istio"})
