"""The traffic-router plug-in point: one small Protocol, one module per backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, get_args

from rollout.spec_base import SpecModel

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@dataclass(frozen=True)
class Weights:
    """Percent of traffic per version; always sums to 100."""

    baseline: int
    candidate: int

    def __post_init__(self) -> None:
        for name, value in (("baseline", self.baseline), ("candidate", self.candidate)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ValueError(f"weights.{name} must be an integer from 0 to 100, got {value!r}")
        if self.baseline + self.candidate != 100:
            raise ValueError(
                f"weights must sum to 100, got baseline={self.baseline} candidate={self.candidate}"
            )

    @classmethod
    def candidate_share(cls, percent: int) -> Weights:
        return cls(baseline=100 - percent, candidate=percent)

    def __str__(self) -> str:
        return f"{self.baseline}/{self.candidate}"


ALL_BASELINE = Weights(baseline=100, candidate=0)
ALL_CANDIDATE = Weights(baseline=0, candidate=100)


def relative_share(baseline_weight: int, candidate_weight: int) -> Weights:
    """Relative weights (each version gets weight / sum) -> percent of traffic. A version
    with a weight > 0 never shows 0%: it does get traffic. ValueError when both are 0."""
    if baseline_weight < 0 or candidate_weight < 0:
        raise ValueError("a weight cannot be negative")
    total = baseline_weight + candidate_weight
    if total == 0:
        raise ValueError("both weights are 0: no version gets any traffic")
    candidate = round(candidate_weight * 100 / total)
    if candidate_weight > 0:
        candidate = max(candidate, 1)
    if baseline_weight > 0:
        candidate = min(candidate, 99)
    return Weights.candidate_share(candidate)


class RouterError(Exception):
    """The router could not be reached or refused a change. Never read as success."""


class MissingObject(RouterError):
    """The object the spec names for the router does not exist: `field` is the spec's path."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class TrafficRouter(Protocol):
    def get_weights(self) -> Weights:
        """Current weights as the router reports them; RouterError when it cannot say."""
        ...

    def set_weights(self, weights: Weights) -> None:
        """Apply weights; RouterError when the router refuses or is unreachable."""
        ...

    def verify(self, weights: Weights) -> bool | None:
        """True when the router reports exactly these weights; None when it cannot be read back."""
        ...


class RouterModel(SpecModel):
    """The spec's `router` block of one kind: each kind's config model derives from this."""

    def policy_problems(self, step_weights: tuple[int, ...]) -> tuple[str, ...]:
        """What this router cannot carry out of a policy's steps (checked at validate)."""
        return ()


@dataclass(frozen=True)
class RouterPlace:
    """Where a router acts: the rollout's namespace (its objects' namespace unless the
    router names another) and a Kubernetes API client, made on first use (so routers outside
    Kubernetes never need one); `kube` raises RouterError when none can be made."""

    namespace: str
    kube: Callable[[], ApiClient]


Config = TypeVar("Config", bound=RouterModel)


@dataclass(frozen=True)
class RouterKind(Generic[Config]):
    """One router kind: its config (the spec's `router` block) and how its router is built."""

    config: type[Config]
    build: Callable[[Config, RouterPlace], TrafficRouter]

    @property
    def name(self) -> str:
        return kind_of(self.config)


def kind_of(config: type[RouterModel]) -> str:
    """The `kind` a config model answers to (its `kind: Literal["..."]` field)."""
    (kind,) = get_args(config.model_fields["kind"].annotation)
    if not isinstance(kind, str):
        raise TypeError(f"{config.__name__}.kind must be a Literal of one string")
    return kind
