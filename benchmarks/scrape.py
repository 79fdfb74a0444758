"""Traffic of one simulated rollout, counted the way Prometheus delivers it to the judge.

The router's weights change whenever the engine says so; the traffic follows them at once.
Every version exposes cumulative counters (`inference_requests_total` by status ok|error,
and every `le` of `inference_latency_seconds_bucket`), which Prometheus scrapes every `S`
seconds with a random phase per rollout and a small jitter. Between two consecutive events
(a scrape, a weight change, the end of a wait) the traffic is one slab of constant weights:
per version, requests ~ Poisson(rate x weight x slab length), errors ~ Binomial(requests, error
rate) and latencies ~ Multinomial over the cells (the bucket bounds refined at the baseline's
true P95 and P95 x (1 + tolerance), see `simulate.cells`).

A look over (start, end] gets, per series, `rollout.analysis.counters.exact_increase` over the
scraped samples: the counter's rise between its last sample at or before `start` and its last
sample at or before `end`, exactly what `rollout/analysis/prometheus.py` computes from a range
query. So a look lags the traffic by up to one scrape interval (requests served at the previous
weights land in the next look), a look may see no scrape at all when S >= the look interval,
and consecutive looks still partition the scraped requests exactly.

`DirectTraffic` is the same world without scrapes: a look gets the counts of the requests
served in (start, end] (what `simulate.simulate` draws on a fixed schedule).

Bad requests: the candidate's errors plus its other requests slower than the baseline's true
P95, counted when served (not when scraped).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from benchmarks.simulate import EPOCH, IntArray, Scenario, cell_probabilities, cells
from rollout.analysis.counters import exact_increase
from rollout.analysis.observation import Bucket, Observation, VersionCounts
from rollout.routers.base import Weights

JITTER = 0.01  # scrape times move by up to +-1% of the interval (uniform)


@dataclass(frozen=True)
class Cells:
    """A scenario's cells on one bucket layout: what a slab of requests is drawn over."""

    les: tuple[float, ...]
    keep: IntArray  # index of each `le` among the cells
    probabilities: tuple[np.ndarray, np.ndarray]  # per version (baseline, candidate)
    error_rates: tuple[float, float]
    slow_cell: int  # the cell whose upper edge is the baseline's true P95
    tail_cell: int  # ... its P95 x (1 + tolerance)

    @staticmethod
    def of(
        scenario: Scenario, les: tuple[float, ...], quantile: float = 0.95, tolerance: float = 0.2
    ) -> Cells:
        if scenario.drift.rate != (1.0, 1.0) or scenario.drift.latency != (1.0, 1.0):
            raise ValueError("the engine-driven simulation has no drift")
        p95 = scenario.baseline.quantile(quantile)
        edges, slow, tail = cells(les, p95, tolerance)
        wanted = set(les)
        keep = np.array([i for i, e in enumerate(edges) if float(e) in wanted], dtype=np.int64)
        probabilities = (
            cell_probabilities(scenario.baseline.cdf, edges),
            cell_probabilities(scenario.candidate.cdf, edges),
        )
        errors = (scenario.baseline_errors, scenario.candidate_errors)
        return Cells(tuple(les), keep, probabilities, errors, slow, tail)


class DirectTraffic:
    """The served requests themselves; a look gets exactly those served in (start, end]."""

    def __init__(
        self, scenario: Scenario, cells: Cells, rng: np.random.Generator, start: float = EPOCH
    ) -> None:
        self.scenario, self.cells, self.rng = scenario, cells, rng
        self.now = start
        self.weights = Weights(baseline=100, candidate=0)
        self.bad = 0  # candidate's bad requests served so far
        self.served = np.zeros(2, dtype=np.int64)  # requests served per version so far
        width = 2 + len(cells.les)  # per version: ok, error, every bucket
        self._pending = np.zeros((2, width), dtype=np.int64)

    def set_weights(self, weights: Weights) -> None:
        self.weights = weights

    def run_until(self, until: float) -> None:
        """Serve traffic at the current weights up to `until`."""
        if until > self.now:
            self._pending += self._slabs(np.array([until - self.now]))[-1]
            self.now = until

    def observe(self, start: float, end: float) -> Observation:
        self.run_until(end)
        counts, self._pending = self._pending, np.zeros_like(self._pending)
        return self._observation(start, end, counts.tolist())

    # ---------------------------------------------------------------- shared

    def _slabs(self, lengths: np.ndarray) -> np.ndarray:
        """Counter increments per slab, cumulated over the slabs: shape (k, 2, 2 + B)."""
        c, rng = self.cells, self.rng
        k = len(lengths)
        increments = np.zeros((k, 2, 2 + len(c.les)), dtype=np.int64)
        shares = (self.weights.baseline / 100.0, self.weights.candidate / 100.0)
        for v in (0, 1):
            if shares[v] == 0.0:
                continue
            n = rng.poisson(self.scenario.rate * shares[v] * lengths)
            e = rng.binomial(n, c.error_rates[v])
            cumulative = np.cumsum(rng.multinomial(n, c.probabilities[v]), axis=1)
            increments[:, v, 0] = n - e
            increments[:, v, 1] = e
            increments[:, v, 2:] = cumulative[:, c.keep]
            self.served[v] += int(n.sum())
            if v == 1:
                slow = n - cumulative[:, c.slow_cell]
                # errors are independent of latency: how many slow requests were also errors
                both = np.where(e > 0, rng.hypergeometric(slow, n - slow, np.maximum(e, 0)), 0)
                self.bad += int((e + slow - both).sum())
        return np.cumsum(increments, axis=0)

    def _observation(self, start: float, end: float, counts: list[list[int]]) -> Observation:
        versions = [
            VersionCounts(
                requests=row[0] + row[1],
                errors=row[1],
                buckets=tuple(Bucket(le, c) for le, c in zip(self.cells.les, row[2:], strict=True)),
            )
            for row in counts
        ]
        return Observation(start, end, versions[0], versions[1])


class ScrapedTraffic(DirectTraffic):
    """Counters scraped every `scrape` seconds; looks cut with `exact_increase`."""

    def __init__(
        self,
        scenario: Scenario,
        cells: Cells,
        rng: np.random.Generator,
        scrape: float,
        start: float = EPOCH,
    ) -> None:
        # The first scrape before the start: the counters exist (at 0) before any traffic moves,
        # and the baseline serves everything until the first weights are set.
        phase = float(rng.uniform(0.0, scrape))
        first = start + phase - scrape
        super().__init__(scenario, cells, rng, start=first)
        self.scrape = scrape
        self._counter = np.zeros((2, 2 + len(cells.les)), dtype=np.int64)
        self.times: list[float] = [first]
        self.samples: list[np.ndarray] = [self._counter.copy()]
        self._next_index = 1
        self._upcoming = self._scrape_time(1)
        self.run_until(start)

    def _scrape_time(self, index: int) -> float:
        jitter = float(self.rng.uniform(-JITTER, JITTER)) * self.scrape
        return round(self.times[0] + index * self.scrape + jitter, 3)  # Prometheus keeps ms

    def run_until(self, until: float) -> None:
        if until <= self.now:
            return
        scrapes = []
        while self._upcoming <= until:
            scrapes.append(self._upcoming)
            self._next_index += 1
            self._upcoming = self._scrape_time(self._next_index)
        edges = np.array([self.now, *scrapes, until])
        cumulative = self._counter + self._slabs(np.diff(edges))
        for i, at in enumerate(scrapes):
            self.times.append(at)
            self.samples.append(cumulative[i])
        self._counter = cumulative[-1]
        self.now = until

    def observe(self, start: float, end: float) -> Observation:
        self.run_until(end)
        # Only the samples around the look matter (the last at or before `start` on).
        first = max(bisect.bisect_right(self.times, start) - 1, 0)
        last = bisect.bisect_right(self.times, end)
        times = self.times[first:last]
        window = np.stack(self.samples[first:last]).reshape(len(times), -1).T.tolist()
        rises = [
            exact_increase(list(zip(times, series, strict=True)), start, end) for series in window
        ]
        width = 2 + len(self.cells.les)
        return self._observation(start, end, [rises[:width], rises[width:]])

    @property
    def counters(self) -> list[list[int]]:
        """The counters' true values now (every slab served so far), per version."""
        result: list[list[int]] = self._counter.tolist()
        return result

    def scraped_total(self, start: float, end: float) -> list[list[int]]:
        """Counter values at the last scrape at or before `end` minus at or before `start`:
        what the looks over (start, end] add up to (no reset in a simulation)."""
        i = bisect.bisect_right(self.times, start) - 1
        j = bisect.bisect_right(self.times, end) - 1
        result: list[list[int]] = (self.samples[j] - self.samples[i]).tolist()
        return result
