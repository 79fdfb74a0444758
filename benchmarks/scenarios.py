"""The benchmark's scenarios (issue 4) and the policy's schedule of traffic steps."""

from __future__ import annotations

from benchmarks.simulate import HEAVY, LOGNORMAL, Drift, Latency, Scenario, Schedule
from rollout.spec import Policy

# Regressions run at 200 req/s to the service: 10 req/s on the candidate at the first 5% step,
# the "10 requests/s or more on the candidate" of the targets.
RATE = 200.0

TAIL_ONLY = HEAVY.tail_stretched(0.75, 1.35, "heavy tail, above P75 stretched: P95 +35%")
AA = "A/A 200 req/s"
AA_HEAVY = "A/A 200 req/s heavy tail"
# Candidates within the allowed +20%: rolling them back is a false rollback too.
WITHIN = ("P95 +10% (within tolerance)", "P95 +20% (at tolerance)")
TAIL_WITHIN = ("tail only, P95 +10% (within tolerance)", "tail only, P95 +20% (at tolerance)")


def _tail(p95_ratio: float) -> Latency:
    name = f"heavy tail, above P75 stretched: P95 +{p95_ratio - 1:.0%}"
    return HEAVY.tail_stretched(0.75, p95_ratio, name)


def _errors(rate: float) -> Scenario:
    name = f"errors 1% -> {rate:.1%}".replace(".0%", "%")
    return Scenario(name, "errors", RATE, LOGNORMAL, LOGNORMAL, candidate_errors=rate, twin=AA)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("A/A 1 req/s", "aa", 1.0, LOGNORMAL, LOGNORMAL, twin="A/A 1 req/s"),
    Scenario("A/A 10 req/s", "aa", 10.0, LOGNORMAL, LOGNORMAL, twin="A/A 10 req/s"),
    Scenario("A/A 100 req/s", "aa", 100.0, LOGNORMAL, LOGNORMAL, twin="A/A 100 req/s"),
    Scenario(AA, "aa", RATE, LOGNORMAL, LOGNORMAL, twin=AA),
    Scenario(AA_HEAVY, "aa", RATE, HEAVY, HEAVY, twin=AA_HEAVY),
    Scenario(
        "A/A diurnal drift",
        "aa",
        RATE,
        LOGNORMAL,
        LOGNORMAL,
        # a morning ramp over the 25 minutes: traffic x0.6 -> x1.4, latency x1.0 -> x1.3 and
        # error rate 1% -> 1.6% on both versions, while the candidate's share grows
        drift=Drift(rate=(0.6, 1.4), latency=(1.0, 1.3), errors=(1.0, 1.6)),
        twin=AA,
    ),
    Scenario(WITHIN[0], "boundary", RATE, LOGNORMAL, LOGNORMAL.scaled(1.1), twin=AA),
    Scenario(WITHIN[1], "boundary", RATE, LOGNORMAL, LOGNORMAL.scaled(1.2), twin=AA),
    Scenario(TAIL_WITHIN[0], "boundary", RATE, HEAVY, _tail(1.1), twin=AA_HEAVY),
    Scenario(TAIL_WITHIN[1], "boundary", RATE, HEAVY, _tail(1.2), twin=AA_HEAVY),
    Scenario("P95 +30%", "latency", RATE, LOGNORMAL, LOGNORMAL.scaled(1.3), twin=AA, within=WITHIN),
    Scenario("P95 +50%", "latency", RATE, LOGNORMAL, LOGNORMAL.scaled(1.5), twin=AA, within=WITHIN),
    Scenario(
        "tail only (P50 same, P95 +35%)",
        "latency",
        RATE,
        HEAVY,
        _tail(1.35),
        twin=AA_HEAVY,
        within=TAIL_WITHIN,
    ),
    _errors(0.015),
    _errors(0.02),
    _errors(0.05),
)

# The scenarios the targets name: detection >= 99% and median time within 2x the oracle's.
TARGETED = ("P95 +30%", "errors 1% -> 2%")


def by_name(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(name)


def schedule(policy: Policy) -> Schedule:
    """The policy's steps cut into its analysis intervals (holds rounded up to whole looks)."""
    interval = policy.analysis.interval
    weights: list[int] = []
    ends: list[int] = []
    for step in policy.steps:
        looks = max(1, -(-int(step.hold) // int(interval)))
        weights += [step.weight] * looks
        ends.append(len(weights) - 1)
    return Schedule(interval, tuple(weights), tuple(ends))
