"""Exact counter increases from raw samples: plain values, resets, appearing and vanishing
series, and the property that consecutive looks partition a window's requests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.analysis.counters import Sample, exact_increase, total_increase

STEADY = [(0.0, 10.0), (15.0, 12.0), (30.0, 20.0), (45.0, 26.0)]


def test_the_rise_between_the_last_samples_at_or_before_each_boundary() -> None:
    assert exact_increase(STEADY, 0, 45) == 16
    assert exact_increase(STEADY, 10, 30) == 10  # from the sample at 0 to the one at 30
    assert exact_increase(STEADY, 15, 30) == 8  # a sample at `start` is the base
    assert exact_increase(STEADY, 14.9, 30) == 10
    assert exact_increase(STEADY, 16, 29) == 0  # no sample inside the look: nothing happened
    assert exact_increase(STEADY, 45, 105) == 0  # after the last sample
    assert exact_increase(STEADY, 20, 1000) == 14  # samples beyond `end` are never read
    assert exact_increase(STEADY, 0, 44.999) == 10


def test_no_extrapolation_one_sample_inside_a_look_is_enough() -> None:
    """increase() over (0, 60] with samples every 60 s has one sample: no answer at all."""
    minutely = [(0.0, 100.0), (60.0, 130.0), (120.0, 150.0)]
    assert exact_increase(minutely, 0, 60) == 30
    assert exact_increase(minutely, 30, 90) == 30
    assert exact_increase(minutely, 60, 120) == 20
    assert exact_increase(minutely, 70, 110) == 0


def test_a_reset_adds_the_new_value() -> None:
    restarted = [(0.0, 100.0), (15.0, 110.0), (30.0, 5.0), (45.0, 9.0)]
    assert exact_increase(restarted, 0, 45) == 10 + 5 + 4
    assert exact_increase(restarted, 15, 30) == 5
    assert exact_increase(restarted, 20, 45) == 9
    twice = [(0.0, 50.0), (10.0, 3.0), (20.0, 1.0), (30.0, 4.0)]
    assert exact_increase(twice, 0, 30) == 3 + 1 + 3


def test_a_series_that_appears_inside_the_look_counts_from_zero() -> None:
    new_pod = [(30.0, 7.0), (45.0, 9.0)]
    assert exact_increase(new_pod, 0, 60) == 9
    assert exact_increase(new_pod, 0, 30) == 7
    assert exact_increase(new_pod, 30, 60) == 2
    assert exact_increase(new_pod, 0, 29) == 0
    first_error = [(45.0, 1.0)]  # the error-status series appears with the first error
    assert exact_increase(first_error, 0, 60) == 1


def test_a_series_that_vanishes_adds_nothing_after_its_last_sample() -> None:
    gone = [(0.0, 5.0), (15.0, 8.0)]
    assert exact_increase(gone, 0, 60) == 3
    assert exact_increase(gone, 15, 60) == 0
    assert exact_increase(gone, 30, 60) == 0
    assert exact_increase([], 0, 60) == 0


def test_counts_are_whole_numbers_even_when_float_sums_drift() -> None:
    big = [(float(t), 2.0**52 + t) for t in range(0, 100, 10)]
    assert exact_increase(big, 0, 90) == 90
    assert isinstance(exact_increase(big, 0, 90), int)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_impossible_counter_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="counters are >= 0"):
        exact_increase([(0.0, 1.0), (15.0, bad)], 0, 30)


def test_total_increase_sums_the_series() -> None:
    restarted = [(0.0, 100.0), (30.0, 5.0)]
    new_pod = [(45.0, 9.0)]
    assert total_increase([STEADY, restarted, new_pod, []], 0, 45) == 16 + 5 + 9
    assert total_increase([], 0, 45) == 0


# ---------------------------------------------------------------------------- properties


@dataclass
class Scraped:
    """A counter's samples and, beside them, what each sample newly saw."""

    samples: list[Sample]
    new: list[int]  # requests each sample first shows (a first sample: its whole value)

    def truth(self, start: float, end: float) -> int:
        return sum(
            n for (at, _), n in zip(self.samples, self.new, strict=True) if start < at <= end
        )


@st.composite
def scraped(draw: st.DrawFn) -> Scraped:
    """A series scraped at irregular times, with resets; it may appear late or vanish early."""
    at = draw(st.floats(0, 100, allow_nan=False))
    value = draw(st.integers(0, 10_000))  # history before its first sample, or a new pod's first
    samples: list[Sample] = [(at, float(value))]
    new = [value]
    for _ in range(draw(st.integers(0, 30))):
        at += draw(st.sampled_from([1.0, 15.0, 30.0, 60.0, 61.5]))
        increment = draw(st.integers(0, 500))
        if draw(st.booleans()) and draw(st.integers(0, 5)) == 0 and increment < value:
            value = increment  # a restart: what it served since, below what it had
        else:
            value += increment
        samples.append((at, float(value)))
        new.append(increment)
    return Scraped(samples, new)


@given(scraped(), st.lists(st.floats(-50, 2200, allow_nan=False), min_size=2, max_size=12))
def test_consecutive_looks_sum_to_the_whole_window(series: Scraped, cuts: list[float]) -> None:
    bounds = sorted(set(cuts))
    if len(bounds) < 2:
        return
    whole = exact_increase(series.samples, bounds[0], bounds[-1])
    looks = [exact_increase(series.samples, s, e) for s, e in pairwise(bounds)]
    assert sum(looks) == whole
    assert all(look >= 0 for look in looks)


@given(scraped(), st.floats(-50, 2200, allow_nan=False), st.floats(0, 2000, allow_nan=False))
def test_a_look_counts_exactly_what_its_samples_first_saw(
    series: Scraped, start: float, length: float
) -> None:
    """Each sample's new requests belong to the look holding it: no extrapolation, no loss
    at resets, a series appearing inside the look counted from 0."""
    end = start + length
    assert exact_increase(series.samples, start, end) == series.truth(start, end)


@given(st.lists(scraped(), max_size=6), st.floats(-50, 1000), st.floats(0, 1000))
def test_total_increase_is_the_sum_of_each_series_truth(
    many: list[Scraped], start: float, length: float
) -> None:
    end = start + length
    assert total_increase([s.samples for s in many], start, end) == sum(
        s.truth(start, end) for s in many
    )
