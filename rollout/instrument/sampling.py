"""Which traces are kept: a head rate, plus every slow or failed request (a tail decision).

Every span is recorded in-process; the decision is taken when the request's root
span ends, because only then are its latency and status known. The rules:

- `error`: the request failed (HTTP 5xx or an unhandled exception): always kept.
- `slow`: the request took longer than `slow_threshold_seconds` (when set), or at least
  the server's own recent `slow_quantile` (default P90 of the last `recent_window`
  requests): always kept. Until `warmup_requests` latencies are known there is no
  recent quantile, so those first requests are kept (`warmup`) rather than guessed.
- `parent`: the caller's `traceparent` says its trace is sampled: kept, so a sampled
  caller's trace is never cut at our service.
- `head`: otherwise, a fixed fraction `head_rate` of traces, decided from the trace ID
  as OpenTelemetry's TraceIdRatioBased does (the same ID gets the same answer anywhere).
A caller's explicit "not sampled" is honoured for the head rate only: its slow and failed
requests are still kept.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

_TRACE_ID_LOW_BITS = (1 << 64) - 1


@dataclass(frozen=True)
class TracingConfig:
    spans_file: Path  # kept spans are appended here, one JSON object per line
    head_rate: float = 0.1
    slow_quantile: float | None = 0.9  # None: no adaptive rule
    slow_threshold_seconds: float | None = None  # None: no fixed rule
    recent_window: int = 500
    warmup_requests: int = 20

    def __post_init__(self) -> None:
        if not 0.0 <= self.head_rate <= 1.0:
            raise ValueError(f"head_rate must be within [0, 1], got {self.head_rate}")
        if self.slow_quantile is not None and not 0.0 < self.slow_quantile < 1.0:
            raise ValueError(
                f"slow_quantile must be within (0, 1) or None, got {self.slow_quantile}"
            )
        if self.slow_threshold_seconds is not None and self.slow_threshold_seconds <= 0:
            raise ValueError(
                f"slow_threshold_seconds must be positive, got {self.slow_threshold_seconds}"
            )
        if self.recent_window < 1 or self.warmup_requests < 0:
            raise ValueError("recent_window must be >= 1 and warmup_requests >= 0")


@dataclass(frozen=True)
class Decision:
    kept: bool
    reason: str  # "error", "slow", "warmup", "parent", "head", or "" when dropped


def head_sampled(trace_id: int, rate: float) -> bool:
    """TraceIdRatioBased's rule: the low 64 bits of the trace ID below rate * 2^64."""
    return (trace_id & _TRACE_ID_LOW_BITS) < round(rate * (1 << 64))


class RecentLatency:
    """The last `window` latencies and their `quantile`, refreshed every few requests."""

    _REFRESH_EVERY = 10  # sorting the window on every request would be wasted work

    def __init__(self, window: int, quantile: float) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self._quantile = quantile
        self._since_refresh = 0
        self._cached: float | None = None

    def __len__(self) -> int:
        return len(self._values)

    def add(self, seconds: float) -> None:
        self._values.append(seconds)
        self._since_refresh += 1
        if self._since_refresh >= self._REFRESH_EVERY:
            self._cached = None

    def value(self) -> float | None:
        if not self._values:
            return None
        if self._cached is None:
            ordered = sorted(self._values)
            index = min(len(ordered) - 1, int(self._quantile * len(ordered)))
            self._cached = ordered[index]
            self._since_refresh = 0
        return self._cached


class TailSampler:
    """Applies the rules above; one instance per server process."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        self._recent = (
            RecentLatency(config.recent_window, config.slow_quantile)
            if config.slow_quantile is not None
            else None
        )

    def decide(
        self, trace_id: int, latency_seconds: float, failed: bool, parent_sampled: bool | None
    ) -> Decision:
        """Decide for one finished request, then remember its latency.

        `parent_sampled`: the caller's sampled flag, None when there was no caller trace.
        """
        decision = self._decide(trace_id, latency_seconds, failed, parent_sampled)
        if self._recent is not None:
            self._recent.add(latency_seconds)
        return decision

    def _decide(
        self, trace_id: int, latency_seconds: float, failed: bool, parent_sampled: bool | None
    ) -> Decision:
        cfg = self.config
        if failed:
            return Decision(True, "error")
        if cfg.slow_threshold_seconds is not None and latency_seconds > cfg.slow_threshold_seconds:
            return Decision(True, "slow")
        if self._recent is not None:
            if len(self._recent) < cfg.warmup_requests:
                return Decision(True, "warmup")
            recent = self._recent.value()
            if recent is not None and latency_seconds >= recent:
                return Decision(True, "slow")
        if parent_sampled is not None:
            return Decision(True, "parent") if parent_sampled else Decision(False, "")
        if head_sampled(trace_id, cfg.head_rate):
            return Decision(True, "head")
        return Decision(False, "")
