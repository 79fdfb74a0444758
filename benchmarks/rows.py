"""The engine-driven rows of issue 8: candidate shapes x bucket layouts x scrape intervals.

Every row is 200 req/s to the service (10 req/s on the candidate at the 5% step), run through
`rollouts.drive` under the policy, counts from scraped counters (`scrape.py`). Kinds:

- "aa": identical versions; any rollback is false.
- "boundary": candidates the policy allows (P95 at most +20%, errors equal); any rollback is false.
- "latency", "errors": regressions to detect.

Rows whose `rule` is "old" run the same engine with the step-advance rule of before issue 8
(`rollouts.old_advance_rule`): the trade-off of waiting for a judgement that is `ready`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.rollouts import Record
from benchmarks.simulate import (
    BIMODAL,
    HEAVY,
    LOGNORMAL,
    LOGNORMAL_60,
    LOGNORMAL_90,
    Latency,
    Scenario,
)

RATE = 200.0
SCRAPES = (15.0, 30.0, 60.0)


def _stretched(base: Latency, label: str, p95_ratio: float) -> Latency:
    name = f"{label}, above P90 stretched: P95 +{p95_ratio - 1:.0%}"
    return base.tail_stretched(0.90, p95_ratio, name)


def _scenario(name: str, kind: str, base: Latency, cand: Latency, errors: float = 0.01) -> Scenario:
    return Scenario(name, kind, RATE, base, cand, candidate_errors=errors)


AA = (
    _scenario("A/A lognormal", "aa", LOGNORMAL, LOGNORMAL),
    _scenario("A/A heavy tail", "aa", HEAVY, HEAVY),
    _scenario("A/A bimodal", "aa", BIMODAL, BIMODAL),
)
ALLOWED = (
    _scenario("heavy tail x1.2", "boundary", HEAVY, HEAVY.scaled(1.2)),
    _scenario("bimodal x1.2", "boundary", BIMODAL, BIMODAL.scaled(1.2)),
    _scenario(
        "lognormal 60 ms, P95 +20% (tail above P90 stretched)",
        "boundary",
        LOGNORMAL_60,
        _stretched(LOGNORMAL_60, "lognormal(median 60 ms)", 1.2),
    ),
    _scenario(
        "bimodal, P95 +15% (tail above P90 stretched)",
        "boundary",
        BIMODAL,
        _stretched(BIMODAL, "bimodal", 1.15),
    ),
    _scenario("lognormal x1.2 (P95 +20%)", "boundary", LOGNORMAL, LOGNORMAL.scaled(1.2)),
    _scenario("lognormal x1.1 (P95 +10%)", "boundary", LOGNORMAL, LOGNORMAL.scaled(1.1)),
)
P95_30 = _scenario("P95 +30% (lognormal x1.3)", "latency", LOGNORMAL, LOGNORMAL.scaled(1.3))
P95_X2 = _scenario(
    "P95 x2 (lognormal, P95 90 ms, x2)", "latency", LOGNORMAL_90, LOGNORMAL_90.scaled(2.0)
)
ERRORS_15 = _scenario("errors 1% -> 1.5%", "errors", LOGNORMAL, LOGNORMAL, 0.015)
ERRORS_2 = _scenario("errors 1% -> 2%", "errors", LOGNORMAL, LOGNORMAL, 0.02)
SHAPES = (*AA, *ALLOWED, P95_30, P95_X2, ERRORS_15, ERRORS_2)


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    layout: str  # "kit" (rollout.instrument's buckets) or "coarse" (issue 4's)
    scrape: float  # seconds between scrapes; 0: direct counts per look (no scrapes)
    rule: str = "ready"  # "ready": the engine as it is; "old": issue 4's step-advance rule

    @property
    def name(self) -> str:
        return f"{self.scenario.name} [{self.layout} buckets, {self.counting}{self.rule_note}]"

    @property
    def counting(self) -> str:
        return f"{self.scrape:g} s scrape" if self.scrape else "direct counts"

    @property
    def rule_note(self) -> str:
        return ", old advance rule" if self.rule == "old" else ""

    @property
    def kind(self) -> str:
        return self.scenario.kind

    @property
    def key(self) -> int:
        """A seed key of the row's own: rows draw the same whatever else runs."""
        return zlib.crc32(self.name.encode())


def rows(
    scrapes: Sequence[float] = SCRAPES,
    coarse_scrapes: Sequence[float] = (30.0,),
    regression_scrapes: Sequence[float] = (30.0,),
    tradeoff: bool = True,
) -> tuple[Row, ...]:
    """The issue's rows: every allowed shape at every scrape interval on the kit's buckets and
    at `coarse_scrapes` on the coarse ones; A/A at every scrape interval; the regressions at
    `regression_scrapes`; with `tradeoff`, the old-rule twins of the trade-off rows."""
    result = [Row(s, "kit", t) for s in ALLOWED for t in scrapes]
    result += [Row(s, "coarse", t) for s in ALLOWED for t in coarse_scrapes]
    result += [Row(s, "kit", t) for s in AA for t in scrapes]
    for t in regression_scrapes:
        result += [Row(P95_30, "kit", t), Row(P95_X2, "coarse", t)]
        result += [Row(ERRORS_15, "kit", t), Row(ERRORS_2, "kit", t)]
    if tradeoff:
        t = regression_scrapes[0]
        for scenario in (AA[0], P95_30, ERRORS_15):
            result.append(Row(scenario, "kit", t, "old"))
    return tuple(result)


def _quantile(values: np.ndarray, q: float) -> float:
    # no interpolation: a quantile past the reached share stays +inf ("not reached")
    if len(values) == 0:
        return math.inf
    return float(np.quantile(values, q, method="inverted_cdf"))


@dataclass(frozen=True)
class RowStats:
    rollouts: int
    rollback: float
    promote: float
    pause: float
    undecided: float
    decision_median: float  # minutes from the start to the decision (any); inf: not reached
    decision_p95: float
    rollback_median: float  # minutes to a rollback, inf for the others (detection time)
    rollback_p95: float
    promotion_median: float  # minutes to a promotion, inf for the others
    bad_median: float  # candidate's bad requests served until the decision
    looks_mean: float
    judge_calls: int
    judge_seconds: float

    @staticmethod
    def of(records: Sequence[Record]) -> RowStats:
        phase = np.array([r.phase for r in records])
        decided = np.array([r.decided for r in records]) / 60.0
        rolled = phase == "RolledBack"
        to_rollback = np.where(rolled, decided, np.inf)
        promoted = np.array([r.promoted for r in records]) / 60.0
        return RowStats(
            rollouts=len(records),
            rollback=float(rolled.mean()),
            promote=float((phase == "Promoted").mean()),
            pause=float((phase == "Paused").mean()),
            undecided=float((~np.isfinite(decided)).mean()),
            decision_median=_quantile(decided, 0.5),
            decision_p95=_quantile(decided, 0.95),
            rollback_median=_quantile(to_rollback, 0.5),
            rollback_p95=_quantile(to_rollback, 0.95),
            promotion_median=_quantile(promoted, 0.5),
            bad_median=float(np.median([r.bad for r in records])),
            looks_mean=float(np.mean([r.looks for r in records])),
            judge_calls=sum(r.looks for r in records),
            judge_seconds=sum(r.judge_seconds for r in records),
        )
