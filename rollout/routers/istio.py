"""`istio`: the weights of a VirtualService's two destinations (`spec.http[].route[]`).

A destination gets weight / (sum of the route's weights); an unset weight is 0 when a
route has several destinations. We always write a sum of 100, which every Istio accepts
(older ones reject other sums). The http routes driven are those that go to either
destination (or the one named by `route`); each must have both, and any other destination
in them must have weight 0.
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
from rollout.spec_base import SpecModel

VIRTUAL_SERVICE: Final = Resource("networking.istio.io", "v1", "virtualservices", "VirtualService")


class Destination(SpecModel):
    """A `route[].destination`: its host as written there, and its subset if any."""

    host: str = Field(max_length=253, pattern=OBJECT_NAME, description="e.g. model or model.ns.svc")
    subset: str | None = Field(None, pattern=LABEL_NAME, description="a DestinationRule subset")

    def __str__(self) -> str:
        return self.host + (f" subset {self.subset}" if self.subset else "")

    def matches(self, destination: dict[str, Any]) -> bool:
        return destination.get("host") == self.host and destination.get("subset") == self.subset


class IstioRouterConfig(RouterModel):
    """An Istio VirtualService splitting traffic between the two versions."""

    kind: Literal["istio"]
    virtual_service: str = Field(
        max_length=253, pattern=OBJECT_NAME, description="the VirtualService"
    )
    baseline_destination: Destination
    candidate_destination: Destination
    route: str | None = Field(
        None,
        max_length=253,
        description="only the http route with this name (spec.http[].name); default: every "
        "http route that goes to either destination",
    )
    namespace: str | None = Field(
        None, pattern=LABEL_NAME, description="the object's namespace; default: the rollout's"
    )

    @model_validator(mode="after")
    def _distinct(self) -> IstioRouterConfig:
        if self.baseline_destination == self.candidate_destination:
            raise ValueError("baselineDestination and candidateDestination must differ")
        return self


@dataclass(frozen=True)
class VirtualServiceWeights(PairedWeights):
    """`ObjectFields` of a VirtualService: `spec.http[].route[].weight`."""

    ITEMS = "http"
    ENTRIES = "route"
    UNSET_WEIGHT = 0
    BOTH_ZERO = " or unset: set them (e.g. 100 and 0)"
    ITEMS_SAID = "http routes"
    NAME_ONE = "name one in spec.router.route"

    config: IstioRouterConfig
    ref: ObjectRef

    def pairs(self, obj: Object) -> list[Pair]:
        return self._routes(obj)

    def _routes(self, obj: Object) -> list[Pair]:
        http = (obj.get("spec") or {}).get("http") or []
        wanted = self.config.route
        driven = []
        for index, route in enumerate(http):
            if wanted is not None and route.get("name") != wanted:
                continue
            destinations = route.get("route") or []
            baseline = self._find(destinations, self.config.baseline_destination)
            candidate = self._find(destinations, self.config.candidate_destination)
            if wanted is None and not baseline and not candidate:
                continue  # a route of some other service
            where = f"spec.http[{index}].route"
            for found, role, destination in (
                (baseline, "baseline", self.config.baseline_destination),
                (candidate, "candidate", self.config.candidate_destination),
            ):
                if len(found) != 1:
                    problem = "has no" if not found else f"has {len(found)} entries for the"
                    raise RouterError(
                        f"{self.ref}: {where} {problem} {role} destination ({destination}): "
                        "an http route must go to both versions, once each; add it, or check "
                        "spec.router.baselineDestination and candidateDestination (the host "
                        "as written in the VirtualService)"
                    )
            for position, other in enumerate(destinations):
                if position not in (baseline[0], candidate[0]) and self.weight(other) != 0:
                    raise RouterError(
                        f"{self.ref}: {where}[{position}] "
                        f"({(other.get('destination') or {}).get('host')!r}) also gets traffic, "
                        "so the two versions' weights would not describe the split: set its "
                        "weight to 0 or move it to an http route of its own"
                    )
            driven.append(Pair(index, baseline[0], candidate[0]))
        if not driven:
            what = (
                f"no http route is named {wanted!r} (spec.http[].name)"
                if wanted
                else "no http route in spec.http goes to either destination"
            )
            raise RouterError(
                f"{self.ref}: {what} ({self.config.baseline_destination}; "
                f"{self.config.candidate_destination}): check spec.router"
            )
        return driven

    @staticmethod
    def _find(destinations: list[dict[str, Any]], destination: Destination) -> list[int]:
        return [
            position
            for position, entry in enumerate(destinations)
            if destination.matches(entry.get("destination") or {})
        ]


RBAC_HINT: Final = (
    "the controller needs get and patch on virtualservices.networking.istio.io: apply "
    "manifests/routers/rbac-istio.yaml"
)


def build(config: IstioRouterConfig, place: RouterPlace) -> KubeRouter:
    ref = ObjectRef(
        VIRTUAL_SERVICE,
        config.namespace or place.namespace,
        config.virtual_service,
        "spec.router.virtualService",
    )
    return KubeRouter(KubeObjects(place.kube, RBAC_HINT), ref, VirtualServiceWeights(config, ref))


KIND: Final = RouterKind(IstioRouterConfig, build)
