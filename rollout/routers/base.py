"""The traffic-router plug-in point: one small Protocol, one module per backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


class RouterError(Exception):
    """The router could not be reached or refused a change. Never read as success."""


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
