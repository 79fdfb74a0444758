"""`kserve`: an InferenceService's `spec.predictor.canaryTrafficPercent` (Serverless mode).

KServe sends that percent of requests to the latest revision (the candidate, deployed by
changing the predictor) and the rest to the last one rolled out at 100% (the baseline).
What traffic there is, KServe's controller says in `status.components.predictor.traffic`
(percent per revision) once it has caught up with the spec: the read-back waits for that
status (`status.observedGeneration` equal to `metadata.generation`) and never reads the
spec as if it were the traffic. Raw and ModelMesh deployments have no canary: refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field

from rollout.routers.base import RouterError, RouterKind, RouterModel, RouterPlace, Weights
from rollout.routers.k8s_objects import (
    LABEL_NAME,
    OBJECT_NAME,
    KubeObjects,
    Object,
    ObjectRef,
    Resource,
)
from rollout.routers.k8s_router import KubeRouter, copied

INFERENCE_SERVICE: Final = Resource(
    "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
)
MODE: Final = "serving.kserve.io/deploymentMode"
SERVERLESS: Final = "Serverless"
PERCENT: Final = "spec.predictor.canaryTrafficPercent"
TRAFFIC: Final = "status.components.predictor.traffic"


class KServeRouterConfig(RouterModel):
    """A KServe InferenceService in Serverless mode, its candidate the latest revision."""

    kind: Literal["kserve"]
    inference_service: str = Field(
        max_length=253, pattern=OBJECT_NAME, description="the InferenceService"
    )
    namespace: str | None = Field(
        None, pattern=LABEL_NAME, description="the object's namespace; default: the rollout's"
    )


@dataclass(frozen=True)
class InferenceServiceWeights:
    """`ObjectFields` of an InferenceService."""

    ref: ObjectRef

    def weights(self, obj: Object, neighbours: Sequence[Object]) -> Weights:
        self._check_mode(obj)
        status = obj.get("status") or {}
        generation = (obj.get("metadata") or {}).get("generation")
        observed = status.get("observedGeneration")
        if observed != generation:
            raise RouterError(
                f"{self.ref}: waiting for KServe: status.observedGeneration is {observed}, "
                f"metadata.generation {generation}; its controller has not yet reported the "
                "traffic of the latest spec"
            )
        predictor = (status.get("components") or {}).get("predictor") or {}
        traffic = predictor.get("traffic") or []
        if not traffic:
            raise RouterError(
                f"{self.ref}: {TRAFFIC} is empty: the predictor has no route yet (is it "
                "ready? `kubectl get isvc` shows why)"
            )
        latest = predictor.get("latestCreatedRevision")
        rolled_out = predictor.get("latestRolledoutRevision")
        if latest is not None and latest == rolled_out and _percent(obj) is None:
            raise RouterError(
                f"{self.ref}: no candidate revision: the latest ({latest}) is the one rolled out "
                "(status.components.predictor.latestRolledoutRevision); deploy the candidate "
                "first: change spec.predictor to it with canaryTrafficPercent: 0"
            )
        candidate = sum(_share(entry, self.ref) for entry in traffic if entry.get("latestRevision"))
        baseline = sum(
            _share(entry, self.ref) for entry in traffic if not entry.get("latestRevision")
        )
        if baseline + candidate != 100:
            raise RouterError(
                f"{self.ref}: {TRAFFIC} sums to {baseline + candidate}%, not 100%: KServe is "
                "between two states; the read is tried again"
            )
        return Weights(baseline=baseline, candidate=candidate)

    def owned(self, obj: Object) -> dict[str, Any]:
        return {PERCENT: _percent(obj)}

    def with_weights(self, obj: Object, neighbours: Sequence[Object], weights: Weights) -> Object:
        self._check_mode(obj)
        changed = copied(obj)
        predictor = (changed.get("spec") or {}).get("predictor")
        if not isinstance(predictor, dict):
            raise RouterError(f"{self.ref}: spec.predictor is missing: it is not a predictor")
        predictor["canaryTrafficPercent"] = weights.candidate
        return changed

    def _check_mode(self, obj: Object) -> None:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        modes = {
            f"metadata.annotations['{MODE}']": annotations.get(MODE),
            "status.deploymentMode": (obj.get("status") or {}).get("deploymentMode"),
        }
        for where, mode in modes.items():
            if mode not in (None, SERVERLESS):
                raise RouterError(
                    f"{self.ref}: {where} is {mode!r}: KServe splits traffic between revisions "
                    f"(canaryTrafficPercent) only in {SERVERLESS} mode; use another router "
                    "(e.g. gateway-api or istio over the two versions' Services)"
                )


def _percent(obj: Object) -> Any:
    return ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")


def _share(entry: dict[str, Any], ref: ObjectRef) -> int:
    percent = entry.get("percent", 0)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise RouterError(f"{ref}: {TRAFFIC} has percent {percent!r}: not a percent")
    return percent


RBAC_HINT: Final = (
    "the controller needs get and patch on inferenceservices.serving.kserve.io: apply "
    "manifests/routers/rbac-kserve.yaml"
)


def build(config: KServeRouterConfig, place: RouterPlace) -> KubeRouter:
    ref = ObjectRef(
        INFERENCE_SERVICE,
        config.namespace or place.namespace,
        config.inference_service,
        "spec.router.inferenceService",
    )
    return KubeRouter(KubeObjects(place.kube, RBAC_HINT), ref, InferenceServiceWeights(ref))


KIND: Final = RouterKind(KServeRouterConfig, build)
