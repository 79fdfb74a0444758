"""`k8s-service`: pure blue/green, the Service's selector switched between the two versions.

A selector picks one version's pods: the weights are 100/0 or 0/100, nothing between. So
the policy's steps must all be at weight 0 (checked at validate): the candidate is judged
before the switch on the traffic it gets some other way (its own preview Service, a
mirror, a test load), then promotion switches the selector at once. We own the selector's
keys that the two versions' selectors name; other keys and the rest of the Service stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from rollout.routers.base import (
    ALL_BASELINE,
    ALL_CANDIDATE,
    RouterError,
    RouterKind,
    RouterModel,
    RouterPlace,
    Weights,
)
from rollout.routers.k8s_objects import LABEL_NAME, KubeObjects, Object, ObjectRef, Resource
from rollout.routers.k8s_router import KubeRouter, copied

SERVICE: Final = Resource("", "v1", "services", "Service")
# Label keys ([prefix/]name) and values, as Kubernetes checks them. Checked by a validator,
# not as patterns of the keys: a CRD's structural schema cannot say those.
LABEL_KEY: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class K8sServiceRouterConfig(RouterModel):
    """A Service whose selector picks the baseline's or the candidate's pods."""

    kind: Literal["k8s-service"]
    service: str = Field(pattern=LABEL_NAME, description="the Service")
    baseline_selector: dict[str, str] = Field(
        min_length=1, description="labels of the baseline's pods, e.g. {version: v1}"
    )
    candidate_selector: dict[str, str] = Field(
        min_length=1, description="labels of the candidate's pods, the same keys"
    )
    namespace: str | None = Field(
        None, pattern=LABEL_NAME, description="the object's namespace; default: the rollout's"
    )

    @field_validator("baseline_selector", "candidate_selector")
    @classmethod
    def _labels(cls, selector: dict[str, str]) -> dict[str, str]:
        for key, value in selector.items():
            if len(key) > 317 or not LABEL_KEY.match(key):
                raise ValueError(f"{key!r} is not a label key ([prefix/]name, e.g. version)")
            if not LABEL_VALUE.match(value):
                raise ValueError(
                    f"{value!r} ({key}) is not a label value: up to 63 letters, digits and "
                    "- _ . beginning and ending with a letter or digit"
                )
        return selector

    @model_validator(mode="after")
    def _same_keys(self) -> K8sServiceRouterConfig:
        if set(self.baseline_selector) != set(self.candidate_selector):
            raise ValueError(
                "baselineSelector and candidateSelector must name the same label keys (the "
                "ones the switch changes)"
            )
        if self.baseline_selector == self.candidate_selector:
            raise ValueError("baselineSelector and candidateSelector must select different pods")
        return self

    def policy_problems(self, step_weights: tuple[int, ...]) -> tuple[str, ...]:
        if all(weight == 0 for weight in step_weights):
            return ()
        return (
            f"router kind 'k8s-service' switches all traffic at once (100/0 or 0/100), but the "
            f"policy's steps send {list(step_weights)}% to the candidate: give it one step at "
            "weight 0 (the analysis before the switch, the candidate reached through its own "
            "Service), e.g. steps: [{weight: 0, hold: 10m}], or use a router that splits "
            "traffic (gateway-api, istio, nginx-ingress)",
        )


@dataclass(frozen=True)
class SelectorWeights:
    """`ObjectFields` of a Service."""

    config: K8sServiceRouterConfig
    ref: ObjectRef

    def weights(self, obj: Object, neighbours: Sequence[Object]) -> Weights:
        selector = _selector(obj)
        for wanted, weights in (
            (self.config.baseline_selector, ALL_BASELINE),
            (self.config.candidate_selector, ALL_CANDIDATE),
        ):
            if all(selector.get(key) == value for key, value in wanted.items()):
                return weights
        raise RouterError(
            f"{self.ref}: spec.selector {selector} selects neither the baseline's pods "
            f"{dict(self.config.baseline_selector)} nor the candidate's "
            f"{dict(self.config.candidate_selector)}: set it to one of them"
        )

    def owned(self, obj: Object) -> dict[str, Any]:
        selector = _selector(obj)
        return {
            f"spec.selector['{key}']": selector.get(key) for key in self.config.baseline_selector
        }

    def with_weights(self, obj: Object, neighbours: Sequence[Object], weights: Weights) -> Object:
        if weights == ALL_BASELINE:
            wanted = self.config.baseline_selector
        elif weights == ALL_CANDIDATE:
            wanted = self.config.candidate_selector
        else:
            raise RouterError(
                f"{self.ref}: a Service selector sends all traffic to one version, it cannot "
                f"split {weights} (baseline/candidate); the policy's steps must be at weight 0"
            )
        changed = copied(obj)
        changed.setdefault("spec", {}).setdefault("selector", {}).update(wanted)
        return changed


def _selector(obj: Object) -> dict[str, Any]:
    return dict((obj.get("spec") or {}).get("selector") or {})


RBAC_HINT: Final = (
    "the controller needs get and patch on services: apply manifests/routers/rbac-k8s-service.yaml"
)


def build(config: K8sServiceRouterConfig, place: RouterPlace) -> KubeRouter:
    ref = ObjectRef(
        SERVICE, config.namespace or place.namespace, config.service, "spec.router.service"
    )
    return KubeRouter(KubeObjects(place.kube, RBAC_HINT), ref, SelectorWeights(config, ref))


KIND: Final = RouterKind(K8sServiceRouterConfig, build)
