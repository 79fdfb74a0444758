"""The weights of an object that splits traffic in weighted pairs of list entries: HTTPRoute
`spec.rules[].backendRefs[].weight` (gateway-api), VirtualService `spec.http[].route[].weight`
(istio). Each router finds its pairs (which entries are the two versions, what is wrong
with them); reading, owning and writing the two weights is the same for both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rollout.routers.base import RouterError, Weights
from rollout.routers.base import relative_share as share
from rollout.routers.k8s_objects import Object, ObjectRef
from rollout.routers.k8s_router import copied


@dataclass(frozen=True)
class Pair:
    """The two versions' entries in `spec.<items>[index].<entries>`."""

    index: int
    baseline: int
    candidate: int


class PairedWeights:
    """`ObjectFields` of an object whose pairs of entries split the traffic; a subclass says
    where the pairs are (`ITEMS`, `ENTRIES`), an unset weight, what to say of a pair weighted
    0 and 0 or of pairs that disagree, and finds the pairs (`pairs`)."""

    ITEMS: ClassVar[str]  # e.g. "rules"
    ENTRIES: ClassVar[str]  # e.g. "backendRefs"
    UNSET_WEIGHT: ClassVar[int]
    BOTH_ZERO: ClassVar[str]  # said after "<paths> are both 0"
    ITEMS_SAID: ClassVar[str]  # "its <ITEMS_SAID> split the traffic differently"
    NAME_ONE: ClassVar[str]  # how to drive one item only
    ref: ObjectRef

    def pairs(self, obj: Object) -> list[Pair]:
        raise NotImplementedError

    def paths(self, pair: Pair) -> tuple[str, str]:
        entries = f"spec.{self.ITEMS}[{pair.index}].{self.ENTRIES}"
        return f"{entries}[{pair.baseline}].weight", f"{entries}[{pair.candidate}].weight"

    def entries(self, obj: Object, pair: Pair) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = obj["spec"][self.ITEMS][pair.index][self.ENTRIES]
        return found

    def weight(self, entry: dict[str, Any]) -> int:
        weight = entry.get("weight", self.UNSET_WEIGHT)
        if isinstance(weight, int) and not isinstance(weight, bool):
            return weight
        return self.UNSET_WEIGHT

    def weights(self, obj: Object, neighbours: Sequence[Object]) -> Weights:
        found: dict[Weights, str] = {}
        for pair in self.pairs(obj):
            entries = self.entries(obj, pair)
            baseline = self.weight(entries[pair.baseline])
            candidate = self.weight(entries[pair.candidate])
            try:
                found.setdefault(share(baseline, candidate), f"spec.{self.ITEMS}[{pair.index}]")
            except ValueError:
                raise RouterError(
                    f"{self.ref}: {' and '.join(self.paths(pair))} are both 0{self.BOTH_ZERO}"
                ) from None
        if len(found) > 1:
            listed = ", ".join(f"{where}: {weights}" for weights, where in found.items())
            raise RouterError(
                f"{self.ref}: its {self.ITEMS_SAID} split the traffic differently ({listed}, "
                f"baseline/candidate): set them alike, or {self.NAME_ONE}"
            )
        return next(iter(found))

    def owned(self, obj: Object) -> dict[str, Any]:
        owned: dict[str, Any] = {}
        for pair in self.pairs(obj):
            entries = self.entries(obj, pair)
            baseline, candidate = self.paths(pair)
            owned[baseline] = entries[pair.baseline].get("weight")
            owned[candidate] = entries[pair.candidate].get("weight")
        return owned

    def with_weights(self, obj: Object, neighbours: Sequence[Object], weights: Weights) -> Object:
        changed = copied(obj)
        for pair in self.pairs(obj):
            entries = self.entries(changed, pair)
            entries[pair.baseline]["weight"] = weights.baseline
            entries[pair.candidate]["weight"] = weights.candidate
        return changed
