"""Exact counts from raw counter samples: what happened in a look, without `increase()`.

A look over (start, end] counts, per series, the counter's rise between its last sample
at or before `start` and its last sample at or before `end`. Consecutive looks share
their boundary sample, so they partition the requests exactly: every request is
counted once, in the look whose window holds the scrape that first saw it. No
extrapolation (Prometheus' `increase()` scales the rise by window / sampled span,
which inflates counts and their variance by up to 2x at a 30 s scrape).

- A counter reset (a value below the one before: the process restarted) adds the new
  value: the counter restarted from 0.
- A series with no sample at or before `start` appeared inside the look (a new pod, the
  first error of a status): it counts from 0, as counters start at 0 when created.
- A series with no sample inside the look adds nothing (it vanished, or was not scraped).

Pure: samples in, integers out. `prometheus.py` feeds it range-vector answers; the
benchmark's simulator feeds it simulated scrapes, so both run the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Sample = tuple[float, float]  # (unix seconds, counter value)


class InvalidSample(ValueError):
    """A sample no counter can have (NaN, infinite, negative)."""

    def __init__(self, value: float, at: float) -> None:
        super().__init__(f"a counter sample of {value} at {at}: counters are >= 0")
        self.value = value


def exact_increase(samples: Sequence[Sample], start: float, end: float) -> int:
    """The counter's rise over (start, end]; `samples` sorted by time, any range around it."""
    previous: float | None = None
    rise = 0.0
    for at, value in samples:
        if at > end:
            break
        if not math.isfinite(value) or value < 0:
            raise InvalidSample(value, at)
        if at > start:
            base = previous if previous is not None else 0.0
            rise += value - base if value >= base else value
        previous = value
    return math.floor(rise + 0.5)  # counters count whole requests; float sums may drift


def total_increase(series: Iterable[Sequence[Sample]], start: float, end: float) -> int:
    """The sum over series (pods, instances, routes) of each one's exact rise."""
    return sum(exact_increase(samples, start, end) for samples in series)
