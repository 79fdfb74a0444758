"""Each series' last sample at the end of a target's previous look, so the next look reads
only its own window.

A look's exact counts need every series' last sample at or before the look's start. Read
from Prometheus, that is a range reaching the staleness period (5 minutes) back: for a
10 s look, 31 times the samples the look itself holds, for every series of every rollout.
When a target's look starts where its previous one ended (the engine chains them so), the
samples at or before that start were all in the previous answer: kept here, the query
reaches back only `WARM_MARGIN_SECONDS` before the start, and the counts are the ones the
full range gives (`counters.exact_increase` of the same samples). A series kept here whose
last sample is older than the staleness period is dropped, as the full range would not
see it. Anything else (a first look, a look after a restart, a start elsewhere) reads the
full range. Memory: one sample and one label set per series of the targets being looked at.

Pure bookkeeping, thread-safe; `prometheus.py` owns the queries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from rollout.analysis.counters import Sample
from rollout.analysis.observation import Target
from rollout.analysis.prom_http import Series

# A warm look's range reaches this far before its start: the sample at the start itself
# (Prometheus 2 ranges are closed) is in it; older ones are kept here.
WARM_MARGIN_SECONDS = 1.0

SeriesKey = tuple[tuple[str, str], ...]


def series_key(labels: dict[str, str]) -> SeriesKey:
    return tuple(sorted(labels.items()))


@dataclass
class _Kept:
    end: float  # the end of the look these samples close
    last: dict[str, dict[SeriesKey, tuple[dict[str, str], Sample]]]  # per signal


class LastSamples:
    """Per target, each series' last sample at or before its previous look's end."""

    def __init__(self, staleness: float) -> None:
        self._staleness = staleness
        self._kept: dict[Target, _Kept] = {}
        self._lock = threading.Lock()

    def warm(self, target: Target, start: float) -> bool:
        """Whether a look from `start` can read only its own window."""
        with self._lock:
            kept = self._kept.get(target)
        return kept is not None and kept.end == start

    def with_kept(self, target: Target, signal: str, fetched: Iterable[Series]) -> list[Series]:
        """The target's series of `signal` as a full range would hold them: each fetched
        series behind its kept sample, and the kept series that have no new sample."""
        with self._lock:
            kept = dict(self._kept[target].last.get(signal, {}))
        merged: list[Series] = []
        for labels, samples in fetched:
            before = kept.pop(series_key(labels), None)
            if before is None:
                merged.append((labels, samples))
                continue
            newer = [s for s in samples if s[0] > before[1][0]]
            merged.append((labels, [before[1], *newer]))
        merged.extend((labels, [sample]) for labels, sample in kept.values())
        return merged

    def keep(self, target: Target, end: float, series: dict[str, Iterable[Series]]) -> None:
        """Remember, per signal, each series' last sample at or before `end` (the look just
        counted); `series` is what the look used (with `with_kept` for a warm look)."""
        last: dict[str, dict[SeriesKey, tuple[dict[str, str], Sample]]] = {}
        for signal, signal_series in series.items():
            kept = last.setdefault(signal, {})
            for labels, samples in signal_series:
                sample = next((s for s in reversed(samples) if s[0] <= end), None)
                if sample is not None and sample[0] >= end - self._staleness:
                    kept[series_key(labels)] = (labels, sample)
        with self._lock:
            self._kept[target] = _Kept(end, last)

    def forget(self, target: Target) -> None:
        with self._lock:
            self._kept.pop(target, None)
