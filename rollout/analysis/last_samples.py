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
from dataclasses import dataclass, field

from rollout.analysis.counters import Sample
from rollout.analysis.observation import Target
from rollout.analysis.prom_http import Series

# A warm look's range reaches this far before its start: the sample at the start itself
# (Prometheus 2 ranges are closed) is in it; older ones are kept here.
WARM_MARGIN_SECONDS = 1.0

SeriesKey = str
Group = tuple[str, str]  # (signal, version): the series one count sums
Kept = dict[SeriesKey, tuple[dict[str, str], Sample]]


def series_key(labels: dict[str, str]) -> SeriesKey:
    """One string per label set (no tuple of pairs: strings are not tracked by the cyclic
    collector, and there is one key per series of every rollout)."""
    return "\x00".join([f"{name}\x01{value}" for name, value in sorted(labels.items())])


@dataclass
class _Target:
    end: float | None = None  # the end of the look whose samples `kept` holds
    kept: dict[Group, Kept] = field(default_factory=dict)
    pending: dict[Group, Kept] = field(default_factory=dict)  # of the look being counted


class LastSamples:
    """Per target, each series' last sample at or before its previous look's end."""

    def __init__(self, staleness: float) -> None:
        self._staleness = staleness
        self._targets: dict[Target, _Target] = {}
        self._lock = threading.Lock()

    def warm(self, target: Target, start: float) -> bool:
        """Whether a look from `start` can read only its own window."""
        with self._lock:
            known = self._targets.get(target)
        return known is not None and known.end == start

    def merge(
        self, target: Target, group: Group, fetched: list[Series], end: float, warm: bool
    ) -> list[Series]:
        """The group's series as the full range holds them (for a warm look: each fetched
        series behind its kept sample, and the kept series with no new sample), noting
        each one's last sample for the next look (kept once `commit` says the look
        counted)."""
        with self._lock:
            known = self._targets.setdefault(target, _Target())
        previous = dict(known.kept.get(group, {})) if warm else {}
        horizon = end - self._staleness
        merged: list[Series] = []
        kept: Kept = {}
        for labels, samples in fetched:
            if not samples:
                continue
            key = series_key(labels)
            before = previous.pop(key, None)
            if before is not None:
                at, first = before[1][0], 0
                while first < len(samples) and samples[first][0] <= at:
                    first += 1  # the margin's samples: the kept one stands for them
                samples = [before[1], *samples[first:]]
            merged.append((labels, samples))
            # An answer evaluated at `end` has no later sample; any other caller's might.
            last = samples[-1]
            if last[0] > end:
                last = next((s for s in reversed(samples) if s[0] <= end), samples[0])
            if last[0] <= end and last[0] >= horizon:
                kept[key] = (labels, last)
        for key, (labels, sample) in previous.items():
            merged.append((labels, [sample]))
            if sample[0] >= horizon:
                kept[key] = (labels, sample)
        known.pending[group] = kept
        return merged

    def commit(self, target: Target, end: float) -> None:
        """The look that ended at `end` was counted: its samples close the next one's start."""
        with self._lock:
            known = self._targets.setdefault(target, _Target())
            known.end, known.kept, known.pending = end, known.pending, {}

    def forget(self, target: Target) -> None:
        """The target's next look reads the full range (something was missing in this one)."""
        with self._lock:
            self._targets.pop(target, None)

    def expire(self, now: float) -> None:
        """Drop targets not looked at for the staleness period (finished rollouts): their
        samples could not close a look any more."""
        with self._lock:
            stale = [
                t for t, known in self._targets.items()
                if known.end is not None and known.end < now - self._staleness
            ]  # fmt: skip
            for target in stale:
                del self._targets[target]
