"""Traffic routers, built from the spec's `router` block by its `kind`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollout import spec
from rollout.routers.base import TrafficRouter
from rollout.routers.haproxy import HAProxyRouter
from rollout.routers.nop import NopRouter

# One factory per `kind` of `spec.RouterConfig`; a test checks both lists agree.
_FACTORIES: dict[str, Callable[[Any], TrafficRouter]] = {
    "haproxy": HAProxyRouter,
    "nop": lambda _config: NopRouter(),
}


def router_kinds() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def build_router(config: spec.RouterConfig) -> TrafficRouter:
    """The router for `config`; an unknown kind is a SpecError, never a fallback."""
    kind = getattr(config, "kind", None)
    factory = _FACTORIES.get(kind) if isinstance(kind, str) else None
    if factory is None:
        raise spec.file_problem(
            "spec",
            "spec.router.kind",
            f"unknown router kind {kind!r}; known kinds: {', '.join(router_kinds())}",
        )
    return factory(config)
