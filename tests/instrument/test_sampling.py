"""The keep/drop rules of the tail sampler, with plain values."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rollout.instrument.sampling import TailSampler, TracingConfig, head_sampled

SPANS = Path("unused.jsonl")


def _trace_ids(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(128) for _ in range(n)]


def test_head_rate_is_the_fraction_of_trace_ids_kept() -> None:
    kept = sum(head_sampled(t, 0.1) for t in _trace_ids(20_000))
    assert 1_800 <= kept <= 2_200
    assert not any(head_sampled(t, 0.0) for t in _trace_ids(1_000))
    assert all(head_sampled(t, 1.0) for t in _trace_ids(1_000))


def test_failed_requests_are_always_kept() -> None:
    sampler = TailSampler(TracingConfig(SPANS, head_rate=0.0, slow_quantile=None))
    for trace_id in _trace_ids(100):
        decision = sampler.decide(trace_id, 0.01, failed=True, parent_sampled=False)
        assert decision.kept and decision.reason == "error"


def test_requests_above_the_fixed_threshold_are_kept_and_the_rest_head_sampled() -> None:
    config = TracingConfig(SPANS, head_rate=0.0, slow_quantile=None, slow_threshold_seconds=0.2)
    sampler = TailSampler(config)
    assert sampler.decide(1, 0.21, failed=False, parent_sampled=None).reason == "slow"
    assert not sampler.decide(1, 0.19, failed=False, parent_sampled=None).kept


def test_requests_at_or_above_the_recent_quantile_are_kept_after_warm_up() -> None:
    config = TracingConfig(SPANS, head_rate=0.0, slow_quantile=0.9, warmup_requests=10)
    sampler = TailSampler(config)
    warm_up = [sampler.decide(1, 0.05, False, None) for _ in range(10)]
    assert all(d.kept and d.reason == "warmup" for d in warm_up)
    # 100 requests of 10..109 ms: P90 is about 100 ms.
    for ms in range(10, 110):
        sampler.decide(1, ms / 1000, False, None)
    assert sampler.decide(1, 0.105, False, None).reason == "slow"
    assert not sampler.decide(1, 0.030, False, None).kept


def test_a_sampled_caller_keeps_the_trace_and_an_unsampled_one_drops_fast_requests() -> None:
    sampler = TailSampler(TracingConfig(SPANS, head_rate=1.0, slow_quantile=None))
    assert sampler.decide(1, 0.01, False, parent_sampled=True).reason == "parent"
    assert not sampler.decide(1, 0.01, False, parent_sampled=False).kept
    assert sampler.decide(1, 0.01, True, parent_sampled=False).kept


@pytest.mark.parametrize(
    ("field", "value"),
    [("head_rate", 1.5), ("slow_quantile", 1.0), ("slow_threshold_seconds", 0.0)],
)
def test_out_of_range_options_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TracingConfig(SPANS, **{field: value})  # type: ignore[arg-type]
