"""The judge's output: one Comparison per metric and an overall Verdict.

Every number that drove a decision is kept here and ends up in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    # A look's "no regression shown yet": never a pass. PASS is a final decision only (the
    # gate's exit 0, a rollout's promotion), never a look's verdict.
    NO_REGRESSION = "NO_REGRESSION_YET"
    FAIL = "FAIL"  # a regression confirmed at the policy's alpha
    INCONCLUSIVE = "INCONCLUSIVE"  # data present but not enough to pass
    NO_DATA = "NO_DATA"  # a query came back empty, NaN or +Inf for a version


@dataclass(frozen=True)
class Comparison:
    """One metric, both versions, the test behind the verdict."""

    metric: str  # "latency_p95", "error_rate", "slo:error_rate", "custom:<name>", ...
    verdict: Verdict
    baseline: float | None  # the estimate for each version (P95 seconds, error rate, ...)
    candidate: float | None
    effect: float | None  # e.g. candidate/baseline P95 ratio
    effect_name: str  # "p95_ratio", "error_rate_ratio", "difference", ...
    interval: tuple[float, float] | None  # confidence interval of the effect
    confidence: float | None  # of the interval, e.g. 0.99
    test: str  # name of the test, e.g. "mixture SPRT on conditional binomial"
    statistic: float | None = None
    p_value: float | None = None  # anytime-valid p = min(1, 1/max e) where sequential
    e_value: float | None = None
    threshold: float | None = None  # what the statistic was compared with (1/alpha, ...)
    baseline_n: int = 0
    candidate_n: int = 0
    reason: str = ""
    details: tuple[tuple[str, float], ...] = field(default=())  # secondary numbers
    leaning: bool = False  # estimate beyond the tolerance and e-value >= 1: do not advance


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    comparisons: tuple[Comparison, ...]
    decided_by: str | None  # the metric that decided a FAIL / INCONCLUSIVE / NO_DATA
    reason: str  # one sentence a person reads
    ready: bool = False  # no regression shown, enough data, nothing leaning: a step may pass
