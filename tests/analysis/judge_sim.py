"""Seeded simulated rollouts for the judge's tests: per-interval counts and buckets
drawn from lognormal latencies, with the candidate's traffic share per look."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from rollout.analysis.observation import Bucket, Observation, VersionCounts
from rollout.instrument.metrics import LATENCY_BUCKETS

LES = (*LATENCY_BUCKETS, math.inf)
LES_ARRAY = np.array(LES)
MEDIAN_S = 0.05
SIGMA = 0.5


def bucket_probabilities(scale: float = 1.0) -> np.ndarray:
    """P(latency in each bucket) for lognormal(median 50 ms x scale, sigma 0.5)."""
    cdf = sps.lognorm.cdf(LES_ARRAY, SIGMA, scale=MEDIAN_S * scale)
    return np.diff(np.concatenate(([0.0], cdf)))


def draw_buckets(rng: np.random.Generator, n: int, probs: np.ndarray) -> np.ndarray:
    """Cumulative bucket counts of n requests."""
    return np.cumsum(rng.multinomial(n, probs))


def version_counts(cumulative: np.ndarray, errors: int) -> VersionCounts:
    n = int(cumulative[-1])
    buckets = tuple(Bucket(le, int(c)) for le, c in zip(LES, cumulative, strict=True))
    return VersionCounts(n, errors, buckets)


def rollout(
    rng: np.random.Generator,
    looks: int,
    rps: float,
    *,
    interval: float = 30.0,
    shares: tuple[float, ...] = (0.1, 0.1, 0.1, 0.5, 0.5, 0.5),
    latency_scale: float = 1.0,
    baseline_error: float = 0.01,
    candidate_error: float = 0.01,
) -> list[Observation]:
    """One simulated rollout: `looks` intervals; shares cycle through the steps."""
    base_p, cand_p = bucket_probabilities(), bucket_probabilities(latency_scale)
    history = []
    for t in range(looks):
        share = shares[min(t * len(shares) // looks, len(shares) - 1)]
        total = rng.poisson(rps * interval)
        n_c = rng.binomial(total, share)
        n_b = total - n_c
        base = version_counts(draw_buckets(rng, n_b, base_p), rng.binomial(n_b, baseline_error))
        cand = version_counts(draw_buckets(rng, n_c, cand_p), rng.binomial(n_c, candidate_error))
        history.append(Observation(t * interval, (t + 1) * interval, base, cand))
    return history
