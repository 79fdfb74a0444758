"""`gateway-api`: the weights of an HTTPRoute's two backendRefs (Gateway API).

A backendRef's weight is relative: it gets weight / (sum of the rule's weights) of the
rule's requests, 0 means none, and an unset weight is 1. We write integers summing to 100,
so the object reads as the percentages. The rules driven are those that route to either
backend (or the one named by `rule`); each must have both backends, and any other
backendRef in them must have weight 0, or the two weights would not describe the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field, model_validator

from rollout.routers.base import RouterError, RouterKind, RouterModel, RouterPlace
from rollout.routers.k8s_objects import (
    LABEL_NAME,
    OBJECT_NAME,
    KubeObjects,
    Object,
    ObjectRef,
    Resource,
)
from rollout.routers.k8s_router import KubeRouter
from rollout.routers.weighted_pairs import Pair, PairedWeights

HTTP_ROUTE: Final = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
DEFAULT_WEIGHT: Final = 1  # Gateway API: an unset weight is 1


class GatewayApiRouterConfig(RouterModel):
    """An HTTPRoute splitting traffic between the two versions' Services."""

    kind: Literal["gateway-api"]
    http_route: str = Field(max_length=253, pattern=OBJECT_NAME, description="the HTTPRoute")
    baseline_backend: str = Field(
        pattern=LABEL_NAME, description="the baseline's Service: a backendRefs[].name"
    )
    candidate_backend: str = Field(
        pattern=LABEL_NAME, description="the candidate's Service: a backendRefs[].name"
    )
    rule: str | None = Field(
        None,
        pattern=LABEL_NAME,
        description="only the rule with this name (spec.rules[].name); default: every rule "
        "that routes to either backend",
    )
    namespace: str | None = Field(
        None, pattern=LABEL_NAME, description="the object's namespace; default: the rollout's"
    )

    @model_validator(mode="after")
    def _distinct(self) -> GatewayApiRouterConfig:
        if self.baseline_backend == self.candidate_backend:
            raise ValueError("baselineBackend and candidateBackend must be different Services")
        return self


@dataclass(frozen=True)
class HTTPRouteWeights(PairedWeights):
    """`ObjectFields` of an HTTPRoute: `spec.rules[].backendRefs[].weight`."""

    ITEMS = "rules"
    ENTRIES = "backendRefs"
    UNSET_WEIGHT = DEFAULT_WEIGHT
    BOTH_ZERO = ": the rule answers every request with an error (500 or 503)"
    ITEMS_SAID = "rules"
    NAME_ONE = "name one rule in spec.router.rule"

    config: GatewayApiRouterConfig
    ref: ObjectRef

    def pairs(self, obj: Object) -> list[Pair]:
        return self._rules(obj)

    def _rules(self, obj: Object) -> list[Pair]:
        """The rules driven, each with its two backendRefs; RouterError naming what lacks."""
        rules = (obj.get("spec") or {}).get("rules") or []
        wanted = self.config.rule
        driven = []
        for index, rule in enumerate(rules):
            if wanted is not None and rule.get("name") != wanted:
                continue
            refs = rule.get("backendRefs") or []
            baseline = self._find(refs, self.config.baseline_backend)
            candidate = self._find(refs, self.config.candidate_backend)
            if wanted is None and not baseline and not candidate:
                continue  # a rule of some other service
            where = f"spec.rules[{index}].backendRefs"
            for found, role, name in (
                (baseline, "baseline", self.config.baseline_backend),
                (candidate, "candidate", self.config.candidate_backend),
            ):
                if len(found) != 1:
                    problem = "has no" if not found else f"has {len(found)} backendRefs to the"
                    raise RouterError(
                        f"{self.ref}: {where} {problem} {role} backend {name!r} (a Service "
                        f"in {self.ref.namespace}): a rule must route to both versions, once "
                        f"each; add it{' with weight 0' if role == 'candidate' else ''}, or "
                        "check spec.router.baselineBackend and candidateBackend"
                    )
            for position, other in enumerate(refs):
                if position not in (baseline[0], candidate[0]) and self.weight(other) != 0:
                    raise RouterError(
                        f"{self.ref}: {where}[{position}] ({other.get('name')!r}) also gets "
                        "traffic, so the two versions' weights would not describe the split: "
                        "set its weight to 0 or move it to a rule of its own"
                    )
            driven.append(Pair(index, baseline[0], candidate[0]))
        if not driven:
            what = f"no rule named {wanted!r}" if wanted else "no rule routes to either backend"
            raise RouterError(
                f"{self.ref}: {what} ({self.config.baseline_backend!r}, "
                f"{self.config.candidate_backend!r}) in spec.rules: check spec.router"
            )
        return driven

    def _find(self, refs: list[dict[str, Any]], name: str) -> list[int]:
        return [
            position
            for position, ref in enumerate(refs)
            if ref.get("name") == name
            and (ref.get("group") or "") == ""
            and (ref.get("kind") or "Service") == "Service"
            and (ref.get("namespace") or self.ref.namespace) == self.ref.namespace
        ]


RBAC_HINT: Final = (
    "the controller needs get and patch on httproutes.gateway.networking.k8s.io: apply "
    "manifests/routers/rbac-gateway-api.yaml"
)


def build(config: GatewayApiRouterConfig, place: RouterPlace) -> KubeRouter:
    ref = ObjectRef(
        HTTP_ROUTE, config.namespace or place.namespace, config.http_route, "spec.router.httpRoute"
    )
    return KubeRouter(KubeObjects(place.kube, RBAC_HINT), ref, HTTPRouteWeights(config, ref))


KIND: Final = RouterKind(GatewayApiRouterConfig, build)
