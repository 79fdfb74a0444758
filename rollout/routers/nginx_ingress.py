"""`nginx-ingress`: ingress-nginx's canary Ingress annotations.

The canary Ingress routes to the candidate's Service; the main Ingress with the same host
and path (no canary annotation) routes to the baseline's. ingress-nginx sends
canary-weight / canary-weight-total of the requests (the total defaults to 100) to the
canary, and applies at most one canary Ingress per rule: so the router reads every Ingress
of the namespace, and refuses a canary rule without a main Ingress or with a second canary.
We write `canary: "true"` and `canary-weight`; the total is the user's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field

from rollout.routers.base import RouterError, RouterKind, RouterModel, RouterPlace, Weights
from rollout.routers.base import relative_share as share
from rollout.routers.k8s_objects import (
    LABEL_NAME,
    OBJECT_NAME,
    KubeObjects,
    Object,
    ObjectRef,
    Resource,
)
from rollout.routers.k8s_router import KubeRouter, copied

INGRESS: Final = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
PREFIX: Final = "nginx.ingress.kubernetes.io/"
CANARY: Final = PREFIX + "canary"
WEIGHT: Final = PREFIX + "canary-weight"
TOTAL: Final = PREFIX + "canary-weight-total"
DEFAULT_TOTAL: Final = 100


class NginxIngressRouterConfig(RouterModel):
    """ingress-nginx: a canary Ingress beside the main one."""

    kind: Literal["nginx-ingress"]
    canary_ingress: str = Field(
        max_length=253,
        pattern=OBJECT_NAME,
        description="the canary Ingress (to the candidate's Service); the main Ingress with "
        "the same host and path routes to the baseline's",
    )
    namespace: str | None = Field(
        None, pattern=LABEL_NAME, description="the object's namespace; default: the rollout's"
    )


def _field(key: str) -> str:
    return f"metadata.annotations['{key}']"


def _annotations(obj: Object) -> dict[str, Any]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _is_canary(obj: Object) -> bool:
    return _annotations(obj).get(CANARY) == "true"


def _rules(obj: Object) -> set[tuple[str, str]]:
    """(host, path) of every rule; '' is any host."""
    found = set()
    for rule in (obj.get("spec") or {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            found.add((rule.get("host") or "", path.get("path") or "/"))
    return found


@dataclass(frozen=True)
class CanaryIngressWeights:
    """`ObjectFields` of a canary Ingress (its neighbours: the namespace's other Ingresses)."""

    ref: ObjectRef

    def weights(self, obj: Object, neighbours: Sequence[Object]) -> Weights:
        if not _is_canary(obj):
            raise RouterError(
                f"{self.ref} is not a canary: {_field(CANARY)} is "
                f"{_annotations(obj).get(CANARY)!r}, not 'true'; create it with the "
                f'annotations {CANARY}: "true" and {WEIGHT}: "0"'
            )
        self._check_rules(obj, neighbours)
        total = self._total(obj)
        raw = _annotations(obj).get(WEIGHT, "0")
        try:
            weight = int(raw)
        except (TypeError, ValueError):
            weight = -1
        if not 0 <= weight <= total:
            raise RouterError(
                f"{self.ref}: {_field(WEIGHT)} is {raw!r}: expected a whole number from 0 to "
                f"{total} ({TOTAL})"
            )
        return share(total - weight, weight)

    def owned(self, obj: Object) -> dict[str, Any]:
        annotations = _annotations(obj)
        return {_field(CANARY): annotations.get(CANARY), _field(WEIGHT): annotations.get(WEIGHT)}

    def with_weights(self, obj: Object, neighbours: Sequence[Object], weights: Weights) -> Object:
        self._check_rules(obj, neighbours)
        total = self._total(obj)
        weight = round(weights.candidate * total / 100)
        if share(total - weight, weight) != weights:
            raise RouterError(
                f"{self.ref}: {_field(TOTAL)} is {total}, which cannot express {weights} "
                "(baseline/candidate): use a multiple of 100, or remove it (100)"
            )
        changed = copied(obj)
        annotations = changed.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[CANARY] = "true"
        annotations[WEIGHT] = str(weight)
        return changed

    def _total(self, obj: Object) -> int:
        raw = _annotations(obj).get(TOTAL, str(DEFAULT_TOTAL))
        try:
            total = int(raw)
        except (TypeError, ValueError):
            total = 0
        if total <= 0:
            raise RouterError(
                f"{self.ref}: {_field(TOTAL)} is {raw!r}: expected a whole number above 0, "
                f"or no annotation ({DEFAULT_TOTAL})"
            )
        return total

    def _check_rules(self, obj: Object, neighbours: Sequence[Object]) -> None:
        """Each rule of the canary has one main Ingress and no other canary."""
        rules = _rules(obj)
        if not rules:
            raise RouterError(
                f"{self.ref}: spec.rules has no host and path: a canary Ingress needs the "
                "same host and path as its main Ingress"
            )
        for host, path in sorted(rules):
            where = f"host {host or '*'} path {path}"
            sharing = [n for n in neighbours if (host, path) in _rules(n)]
            if not any(not _is_canary(n) for n in sharing):
                raise RouterError(
                    f"{self.ref}: no main Ingress (without {CANARY}) in {self.ref.namespace} "
                    f"routes {where}, so the canary has no baseline to share it with: create "
                    "the main Ingress to the baseline's Service with the same host and path"
                )
            for other in sharing:
                if _is_canary(other):
                    name = (other.get("metadata") or {}).get("name")
                    raise RouterError(
                        f"{self.ref}: Ingress {self.ref.namespace}/{name} is also a canary for "
                        f"{where}; ingress-nginx applies at most one canary Ingress per rule: "
                        "remove one of them (or its canary annotation)"
                    )


RBAC_HINT: Final = (
    "the controller needs get, list and patch on ingresses.networking.k8s.io: apply "
    "manifests/routers/rbac-nginx-ingress.yaml"
)


def build(config: NginxIngressRouterConfig, place: RouterPlace) -> KubeRouter:
    ref = ObjectRef(
        INGRESS,
        config.namespace or place.namespace,
        config.canary_ingress,
        "spec.router.canaryIngress",
    )
    return KubeRouter(
        KubeObjects(place.kube, RBAC_HINT),
        ref,
        CanaryIngressWeights(ref),
        read_neighbours=True,
    )


KIND: Final = RouterKind(NginxIngressRouterConfig, build)
