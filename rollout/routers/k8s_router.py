"""A `TrafficRouter` over one Kubernetes object; each kind brings its fields (`ObjectFields`).

Set: read the object, compute it with our fields changed, write the difference as a merge
patch at the resourceVersion read (a 409 reads again and recomputes), then check that what
the API server kept is what was asked (a mutating webhook could change it). Read: the
weights the object states (for KServe, its controller's status), checked against what this
router last wrote: a change someone else made is a RouterError naming the field, never
taken as the new truth. Only a write of all traffic to the baseline (a rollback, an abort)
goes over such a change: it is the safe place to be, and the rollout must be able to end.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, Final, Protocol

from rollout.routers.base import ALL_BASELINE, RouterError, Weights
from rollout.routers.k8s_objects import Conflict, KubeObjects, Object, ObjectRef, merge_diff

MAX_WRITES: Final = 5  # conditional writes refused with 409 in a row before giving up


class ObjectFields(Protocol):
    """One router kind's fields of its object: pure functions of the object, no I/O.
    `neighbours` are the other objects of its kind in its namespace, when the router was
    built to read them (nginx-ingress: the main Ingress and other canaries)."""

    def weights(self, obj: Object, neighbours: Sequence[Object]) -> Weights:
        """The traffic split the object states; RouterError when it states none."""
        ...

    def owned(self, obj: Object) -> dict[str, Any]:
        """Our fields' values by field path: what a write sets, and nobody else may change."""
        ...

    def with_weights(self, obj: Object, neighbours: Sequence[Object], weights: Weights) -> Object:
        """A copy of `obj` with our fields set to `weights`; RouterError when it cannot
        carry them (a backend missing, weights this kind cannot express)."""
        ...


def _shown(value: Any) -> str:
    return "absent" if value is None else json.dumps(value)


class KubeRouter:
    """`TrafficRouter` over the object `ref`, through `objects`."""

    def __init__(
        self,
        objects: KubeObjects,
        ref: ObjectRef,
        fields: ObjectFields,
        *,
        read_neighbours: bool = False,
    ) -> None:
        self.objects = objects
        self.ref = ref
        self.fields = fields
        self.read_neighbours = read_neighbours
        self._written: dict[str, Any] | None = None  # our fields as last written and kept

    def __repr__(self) -> str:
        return f"KubeRouter({self.ref})"

    def get_weights(self) -> Weights:
        obj, neighbours = self._read()
        self._check_unchanged(obj)
        return self.fields.weights(obj, neighbours)

    def set_weights(self, weights: Weights) -> None:
        for _ in range(MAX_WRITES):
            obj, neighbours = self._read()
            if weights != ALL_BASELINE:
                self._check_unchanged(obj)
            wanted = self.fields.with_weights(obj, neighbours, weights)
            patch = merge_diff(obj, wanted)
            if patch:
                patch.setdefault("metadata", {})["resourceVersion"] = _version(obj, self.ref)
                try:
                    obj = self.objects.merge_patch(self.ref, patch)
                except Conflict:
                    continue  # changed since read: read again, check again
            kept, asked = self.fields.owned(obj), self.fields.owned(wanted)
            if kept != asked:
                path = next(p for p in asked if kept.get(p) != asked[p])
                raise RouterError(
                    f"{self.ref}: wrote {path} = {_shown(asked[path])} but the API server kept "
                    f"{_shown(kept.get(path))}: an admission webhook or another controller "
                    "changes it on every write; find it with `kubectl get "
                    f"{self.ref.resource.plural} -n {self.ref.namespace} {self.ref.name} "
                    "--show-managed-fields -o yaml`"
                )
            self._written = kept
            return
        raise RouterError(
            f"{self.ref}: {MAX_WRITES} writes in a row refused with 409 Conflict: someone else "
            "keeps writing it at the same time; the rollout tries again later"
        )

    def verify(self, weights: Weights) -> bool | None:
        """True when the object states exactly these weights; None when it cannot be read."""
        try:
            obj, neighbours = self._read()
            return self.fields.weights(obj, neighbours) == weights
        except RouterError:
            return None

    def _read(self) -> tuple[Object, list[Object]]:
        if not self.read_neighbours:
            return self.objects.get(self.ref), []
        listed = self.objects.list_objects(self.ref)
        mine = [o for o in listed if (o.get("metadata") or {}).get("name") == self.ref.name]
        if not mine:
            return self.objects.get(self.ref), []  # raises the not-found error
        return mine[0], [o for o in listed if o is not mine[0]]

    def _check_unchanged(self, obj: Object) -> None:
        """RouterError when our fields no longer hold what this router last wrote."""
        if self._written is None:
            return  # nothing written yet by this router: the object's weights are the truth
        now = self.fields.owned(obj)
        for path, ours in self._written.items():
            if now.get(path) != ours:
                raise RouterError(
                    f"{self.ref}: {path} is {_shown(now.get(path))}, but this rollout set "
                    f"{_shown(ours)}: someone else changed the weights. Put it back to "
                    f"{_shown(ours)}, or stop whoever writes it (a GitOps sync, a person, "
                    "another rollout); a rollback or abort still moves all traffic to the "
                    "baseline"
                )


def _version(obj: Object, ref: ObjectRef) -> str:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    if not version:
        raise RouterError(f"{ref}: the API answered without metadata.resourceVersion")
    return str(version)


def copied(obj: Object) -> Object:
    """A deep copy to change: the object read stays as read (its patch is their difference)."""
    return copy.deepcopy(obj)
