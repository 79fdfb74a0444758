"""Latency shapes, bucket layouts, and the direct simulator: per analysis interval and version,
the counts of a fixed schedule of looks (the peers' rows; `scrape.py` simulates Prometheus' scrapes
for the engine-driven rows).

Per interval: requests ~ Poisson(rate x weight x interval), errors ~ Binomial(requests, error
rate), latencies ~ Multinomial over cells cut from the true distribution's CDF. The cells are the
histogram buckets refined at the baseline's true P95 and at P95 x (1 + tolerance), so the same
draw also gives the per-request indicators the oracle and the "bad requests" count need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import ndtr

from rollout.analysis.observation import Bucket, Observation, VersionCounts
from rollout.instrument.metrics import LATENCY_BUCKETS

EPOCH = 1_700_000_000.0  # simulated rollouts start here (unix seconds)
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Bucket layouts (seconds); +Inf closes the histogram. The kit's (rollout.instrument), dense around
# the latency SLO, and the coarse layout the benchmark used before (issue 4), 100 -> 150 ms at P95.
KIT_LES: tuple[float, ...] = (*sorted(float(b) for b in LATENCY_BUCKETS), math.inf)
COARSE_LES: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, math.inf,
)  # fmt: skip
LAYOUTS: dict[str, tuple[float, ...]] = {"kit": KIT_LES, "coarse": COARSE_LES}


# ---------------------------------------------------------------------------- distributions


Cdf = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class Latency:
    """A latency distribution known by its CDF (seconds -> probability)."""

    name: str
    cdf: Cdf

    def quantile(self, q: float) -> float:
        return float(brentq(lambda x: float(self.cdf(np.array([x]))[0]) - q, 1e-6, 1e4))

    def scaled(self, factor: float, name: str | None = None) -> Latency:
        """Every latency times `factor`: every quantile moves by the same ratio."""
        return Latency(name or f"{self.name} x{factor:g}", lambda x: self.cdf(x / factor))

    def tail_stretched(self, pivot_q: float, p95_ratio: float, name: str) -> Latency:
        """Unchanged below the `pivot_q` quantile; above it stretched so P95 grows by the ratio."""
        pivot, p95 = self.quantile(pivot_q), self.quantile(0.95)
        stretch = (p95_ratio * p95 - pivot) / (p95 - pivot)
        base = self.cdf

        def cdf(x: FloatArray) -> FloatArray:
            return np.where(x <= pivot, base(x), base(pivot + (x - pivot) / stretch))

        return Latency(name, cdf)


def lognormal(median: float, sigma: float) -> Latency:
    def cdf(x: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return np.asarray(ndtr((np.log(x) - math.log(median)) / sigma), dtype=np.float64)

    return Latency(f"lognormal(median {median * 1000:g} ms, sigma {sigma:.2f})", cdf)


def lognormal_pareto(
    median: float, sigma: float, tail_weight: float, xm: float, shape: float
) -> Latency:
    """A lognormal body with a Pareto tail component: rare, very slow requests."""
    body = lognormal(median, sigma).cdf

    def cdf(x: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            pareto = np.where(x >= xm, 1.0 - (xm / np.maximum(x, xm)) ** shape, 0.0)
        return (1.0 - tail_weight) * body(x) + tail_weight * pareto

    name = f"lognormal + {tail_weight:.0%} Pareto(xm {xm * 1000:g} ms, shape {shape:g})"
    return Latency(name, cdf)


def mixture(name: str, *components: tuple[float, Latency]) -> Latency:
    """A mixture of latency distributions, e.g. a cache: (weight, distribution) pairs."""
    total = sum(w for w, _ in components)

    def cdf(x: FloatArray) -> FloatArray:
        result = np.zeros(np.shape(x))
        for weight, distribution in components:
            result += (weight / total) * distribution.cdf(x)
        return result

    return Latency(name, cdf)


Z95 = 1.6448536269514722
# Baseline P95 = 100 ms exactly (sigma = ln 2 / z_0.95), median 50 ms.
LOGNORMAL = lognormal(0.05, math.log(2.0) / Z95)
HEAVY = lognormal_pareto(0.05, 0.35, 0.04, 0.08, 1.6)
# Median 60 ms, P95 100 ms exactly: the body of the tail-stretched candidate.
LOGNORMAL_60 = lognormal(0.06, math.log(0.1 / 0.06) / Z95)
# P95 90 ms, between the coarse bounds: with the P95 exactly on a bound (100 ms) and x2 landing
# exactly on the next one (200 ms), no shape-free test can show anything on the coarse buckets.
LOGNORMAL_90 = lognormal(0.045, math.log(2.0) / Z95)
# A cache in front of the model: 80% hits around 20 ms, 20% misses around 300 ms.
BIMODAL = mixture(
    "bimodal: 80% lognormal(median 20 ms, sigma 0.30) + 20% lognormal(median 300 ms, sigma 0.25)",
    (0.8, lognormal(0.02, 0.30)),
    (0.2, lognormal(0.30, 0.25)),
)


# ---------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Drift:
    """Both versions move together over the rollout (a morning load ramp): multipliers at the
    start and the end of the rollout, linear in between."""

    rate: tuple[float, float] = (1.0, 1.0)
    latency: tuple[float, float] = (1.0, 1.0)
    errors: tuple[float, float] = (1.0, 1.0)

    def at(self, pair: tuple[float, float], fraction: float) -> float:
        return pair[0] + (pair[1] - pair[0]) * fraction


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "aa" (no regression), "latency", "errors", "boundary" (at the tolerance)
    rate: float  # total requests/s to the service; the candidate gets rate x weight
    baseline: Latency
    candidate: Latency
    baseline_errors: float = 0.01
    candidate_errors: float = 0.01
    drift: Drift = field(default_factory=Drift)
    twin: str = ""  # the A/A scenario whose calibration draws tune the peers for this one
    # latency regressions: scenarios within the allowed regression, where a rollback is false too
    within: tuple[str, ...] = ()

    @property
    def regression(self) -> bool:
        return self.kind in ("latency", "errors")


@dataclass(frozen=True)
class Schedule:
    """The policy's traffic steps cut into analysis intervals."""

    interval: float  # seconds
    weights: tuple[int, ...]  # candidate percent per interval
    step_ends: tuple[int, ...]  # index of the last interval of each step

    @property
    def intervals(self) -> int:
        return len(self.weights)


@dataclass(frozen=True)
class Draws:
    """`rollouts` simulated rollouts, shape (rollouts, intervals[, buckets])."""

    requests: IntArray  # (R, T, 2): baseline, candidate
    errors: IntArray  # (R, T, 2)
    buckets: IntArray  # (R, T, 2, B) cumulative counts per `le` of `les`
    bad: IntArray  # (R, T) candidate errors + candidate non-errors slower than baseline's P95
    tail: IntArray  # (R, T) candidate requests above the baseline's true P95 x (1 + tolerance)
    oracle_tail: FloatArray  # (T, 2): tail mass above that bound, under H0 (=1-q) and truth
    oracle_errors: FloatArray  # (T, 2): candidate error rate under H0 (= baseline's) and truth
    les: tuple[float, ...] = KIT_LES  # the bucket layout of `buckets`


def cells(les: tuple[float, ...], p95: float, tolerance: float) -> tuple[FloatArray, int, int]:
    """Cell upper edges: the buckets plus the two indicator bounds; the bounds' indexes."""
    edges = np.array(sorted({*les, p95, p95 * (1.0 + tolerance)}))
    return (
        edges,
        int(np.searchsorted(edges, p95)),
        int(np.searchsorted(edges, p95 * (1 + tolerance))),
    )


def cell_probabilities(cdf: Cdf, edges: FloatArray) -> FloatArray:
    upper = np.where(np.isinf(edges), 1.0, cdf(np.where(np.isinf(edges), 1.0, edges)))
    probabilities = np.diff(np.concatenate(([0.0], upper)))
    probabilities = np.clip(probabilities, 0.0, None)
    normalised: FloatArray = probabilities / probabilities.sum()
    return normalised


def simulate(
    scenario: Scenario,
    schedule: Schedule,
    rollouts: int,
    rng: np.random.Generator,
    *,
    quantile: float = 0.95,
    tolerance: float = 0.20,
    les: tuple[float, ...] = KIT_LES,
) -> Draws:
    steps = schedule.intervals
    requests = np.zeros((rollouts, steps, 2), dtype=np.int64)
    errors = np.zeros_like(requests)
    buckets = np.zeros((rollouts, steps, 2, len(les)), dtype=np.int64)
    bad = np.zeros((rollouts, steps), dtype=np.int64)
    tail = np.zeros((rollouts, steps), dtype=np.int64)
    oracle_tail = np.zeros((steps, 2))
    oracle_errors = np.zeros((steps, 2))
    bucket_of_le = {le: i for i, le in enumerate(les)}
    base_p95 = scenario.baseline.quantile(quantile)
    for t, weight in enumerate(schedule.weights):
        fraction = t / max(steps - 1, 1)
        drift = scenario.drift
        scale = drift.at(drift.latency, fraction)
        rate = scenario.rate * drift.at(drift.rate, fraction) * schedule.interval
        error_factor = drift.at(drift.errors, fraction)
        p95 = base_p95 * scale
        edges, slow_cell, tail_cell = cells(les, p95, tolerance)
        for v, (share, dist, error_rate) in enumerate(
            (
                ((100 - weight) / 100, scenario.baseline, scenario.baseline_errors),
                (weight / 100, scenario.candidate, scenario.candidate_errors),
            )
        ):
            cdf = dist.scaled(scale).cdf
            n = rng.poisson(rate * share, size=rollouts)
            e = rng.binomial(n, error_rate * error_factor)
            drawn = rng.multinomial(n, cell_probabilities(cdf, edges))
            cumulative = np.cumsum(drawn, axis=1)
            keep = [i for i, le in enumerate(edges) if float(le) in bucket_of_le]
            requests[:, t, v], errors[:, t, v] = n, e
            buckets[:, t, v, :] = cumulative[:, keep]
            if v == 1:
                slow = n - cumulative[:, slow_cell]
                tail[:, t] = n - cumulative[:, tail_cell]
                # errors are independent of latency: how many slow requests were also errors
                both = np.where(e > 0, rng.hypergeometric(slow, n - slow, np.maximum(e, 0)), 0)
                bad[:, t] = e + slow - both
                truth = 1.0 - float(cdf(np.array([p95 * (1 + tolerance)]))[0])
                oracle_tail[t] = (1.0 - quantile, truth)
                oracle_errors[t] = (
                    scenario.baseline_errors * error_factor,
                    error_rate * error_factor,
                )
    return Draws(requests, errors, buckets, bad, tail, oracle_tail, oracle_errors, les)


# ---------------------------------------------------------------------------- read-outs


def histogram_quantile(q: float, cumulative: IntArray, layout: tuple[float, ...]) -> FloatArray:
    """Prometheus' `histogram_quantile` over the last axis (cumulative counts per `layout`),
    vectorised; NaN where there is no request."""
    les = np.array(layout)
    counts = cumulative.astype(np.float64)
    total = counts[..., -1]
    rank = q * total
    index = np.argmax(counts >= rank[..., None], axis=-1)
    upper = les[index]
    lower = np.where(index > 0, les[np.maximum(index - 1, 0)], 0.0)
    below = np.where(
        index > 0, np.take_along_axis(counts, np.maximum(index - 1, 0)[..., None], -1)[..., 0], 0.0
    )
    at = np.take_along_axis(counts, index[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower + (upper - lower) * (rank - below) / (at - below)
    # In the +Inf bucket Prometheus answers the highest finite bound.
    value = np.where(np.isinf(upper), les[-2], value)
    return np.where(total > 0, value, np.nan)


def observations(draws: Draws, rollout: int, interval: float) -> list[Observation]:
    """One simulated rollout as the judge sees it: one Observation per interval."""
    result = []
    for t in range(draws.requests.shape[1]):
        versions = []
        for v in (0, 1):
            counts = draws.buckets[rollout, t, v]
            versions.append(
                VersionCounts(
                    requests=int(draws.requests[rollout, t, v]),
                    errors=int(draws.errors[rollout, t, v]),
                    buckets=tuple(
                        Bucket(le, int(c)) for le, c in zip(draws.les, counts, strict=True)
                    ),
                )
            )
        start = EPOCH + t * interval
        result.append(Observation(start, start + interval, versions[0], versions[1]))
    return result
