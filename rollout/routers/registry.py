"""Every router kind, and the spec's `router` union built from them.

A kind is one module under `rollout/routers/` exposing `KIND` (its config model and how
its router is built); listing it here is all it takes: the spec's discriminated union, the
CRD's `kind` enum and `build_router` follow from this list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final, Union

from pydantic import Field

from rollout.routers import gateway_api, haproxy, istio, k8s_service, kserve, nginx_ingress
from rollout.routers.base import RouterKind, RouterModel, RouterPlace, TrafficRouter, kind_of
from rollout.routers.nop import NopRouterConfig

KINDS: Final[tuple[RouterKind[Any], ...]] = (
    haproxy.KIND,
    gateway_api.KIND,
    istio.KIND,
    nginx_ingress.KIND,
    kserve.KIND,
    k8s_service.KIND,
)
# Known kinds that a spec may name but that are refused at validate, with their reason.
REFUSED: Final[tuple[type[RouterModel], ...]] = (NopRouterConfig,)
_BY_CONFIG: Final = {kind.config: kind for kind in KINDS}

if TYPE_CHECKING:
    RouterConfig = RouterModel
else:
    RouterConfig = Annotated[
        Union[tuple(kind.config for kind in KINDS) + REFUSED],  # noqa: UP007 - built at run time
        Field(discriminator="kind"),
    ]


def router_kinds() -> tuple[str, ...]:
    """The kinds a rollout can run with."""
    return tuple(kind.name for kind in KINDS)


def union_tags() -> tuple[str, ...]:
    """Every `kind` the spec's union knows (pydantic names its branches by them)."""
    return (*router_kinds(), *(kind_of(config) for config in REFUSED))


def build_router(config: RouterModel, place: RouterPlace) -> TrafficRouter:
    """The router for `config`; an unknown kind is a SpecError, never a fallback."""
    kind = _BY_CONFIG.get(type(config))
    if kind is None:
        from rollout.spec import file_problem

        raise file_problem(
            "spec",
            "spec.router.kind",
            f"unknown router kind {getattr(config, 'kind', None)!r}; known kinds: "
            f"{', '.join(router_kinds())}",
        )
    return kind.build(config, place)
