"""Numbers as a person reads them in a verdict's reason."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rollout.analysis.verdict import Comparison


def ms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    return f"{seconds * 1000:.3g} ms"


def pct(rate: float | None) -> str:
    if rate is None or not math.isfinite(rate):
        return "n/a"
    return f"{rate:.2%}"


def signed_pct(change: float) -> str:
    return f"{change:+.0%}"


def overall_reason(comparisons: Sequence[Comparison], alpha: float, looks: int) -> str:
    """A promotion states the change too: each metric's estimate and interval."""
    parts = "; ".join(c.reason for c in comparisons)
    return f"no regression shown at alpha {alpha:g} after {looks} look(s): {parts}"
