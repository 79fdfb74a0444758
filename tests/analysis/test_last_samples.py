"""The kept last samples with plain values: what a chained look merges, what goes stale."""

from __future__ import annotations

from rollout.analysis.counters import exact_increase
from rollout.analysis.last_samples import LastSamples
from rollout.analysis.observation import Target

TARGET = Target("m", "1", "2")
GROUP = ("requests", "1")
POD_A = {"pod": "a", "model_version": "1"}
POD_B = {"pod": "b", "model_version": "1"}


def by_pod(series: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> dict[str, object]:
    return {labels["pod"]: samples for labels, samples in series}


def test_a_chained_look_counts_from_the_kept_sample_and_keeps_quiet_series() -> None:
    last = LastSamples(staleness=300)
    assert not last.warm(TARGET, 100)
    first = [(POD_A, [(80.0, 10.0), (95.0, 12.0)]), (POD_B, [(90.0, 5.0)])]
    assert last.merge(TARGET, GROUP, first, 100, warm=False) == first
    assert not last.warm(TARGET, 100)  # not until the look is counted
    last.commit(TARGET, 100)
    assert last.warm(TARGET, 100) and not last.warm(TARGET, 99)
    # The next answer: pod a's samples from the margin on (one of them kept), pod b silent.
    merged = by_pod(last.merge(TARGET, GROUP, [(POD_A, [(95.0, 12.0), (105.0, 20.0)])], 110, True))
    assert merged == {"a": [(95.0, 12.0), (105.0, 20.0)], "b": [(90.0, 5.0)]}
    a, b = merged["a"], merged["b"]
    assert isinstance(a, list) and isinstance(b, list)
    assert exact_increase(a, 100, 110) == 8 and exact_increase(b, 100, 110) == 0


def test_a_series_silent_for_the_staleness_period_is_not_kept_nor_a_finished_target() -> None:
    last = LastSamples(staleness=300)
    last.merge(TARGET, GROUP, [(POD_A, [(690.0, 7.0)]), (POD_B, [(700.0, 5.0)])], 1000, False)
    last.commit(TARGET, 1000)
    assert list(by_pod(last.merge(TARGET, GROUP, [], 1010, True))) == ["b"]  # a: 310 s old
    last.commit(TARGET, 1010)
    last.expire(1200)
    assert last.warm(TARGET, 1010)
    last.expire(1400)  # no look for more than the staleness period: the rollout is done
    assert not last.warm(TARGET, 1010)
