"""The kept last samples with plain values: what a warm look merges, what goes stale."""

from __future__ import annotations

from rollout.analysis.counters import exact_increase
from rollout.analysis.last_samples import LastSamples
from rollout.analysis.observation import Target

TARGET = Target("m", "1", "2")
POD_A = {"pod": "a", "model_version": "1"}
POD_B = {"pod": "b", "model_version": "1"}


def test_a_chained_look_counts_from_the_kept_sample_and_keeps_quiet_series() -> None:
    last = LastSamples(staleness=300)
    assert not last.warm(TARGET, 100)
    last.keep(
        TARGET, 100, {"requests": [(POD_A, [(80.0, 10.0), (95.0, 12.0)]), (POD_B, [(90.0, 5.0)])]}
    )
    assert last.warm(TARGET, 100) and not last.warm(TARGET, 99)
    # The next answer: pod a's samples from the margin on (one already kept), pod b silent.
    merged = dict(
        (labels["pod"], samples)
        for labels, samples in last.with_kept(
            TARGET, "requests", [(POD_A, [(95.0, 12.0), (105.0, 20.0)])]
        )
    )
    assert merged == {"a": [(95.0, 12.0), (105.0, 20.0)], "b": [(90.0, 5.0)]}
    assert exact_increase(merged["a"], 100, 110) == 8 and exact_increase(merged["b"], 100, 110) == 0


def test_a_series_silent_for_the_staleness_period_is_not_kept() -> None:
    last = LastSamples(staleness=300)
    last.keep(TARGET, 1000, {"requests": [(POD_A, [(690.0, 7.0)]), (POD_B, [(700.0, 5.0)])]})
    merged = last.with_kept(TARGET, "requests", [])
    assert [labels["pod"] for labels, _ in merged] == ["b"]  # a's sample is 310 s old
