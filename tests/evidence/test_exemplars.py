"""Which traces a report names, in what order, and the links it builds for them."""

from __future__ import annotations

import math

import pytest

from rollout.analysis.observation import Exemplar
from rollout.evidence.exemplars import TYPICAL, attach_spans, build_link, select_evidence
from rollout.evidence.report import SpanTiming

JAEGER = "http://jaeger:16686/trace/{trace_id}"
T0 = 1_714_564_800.0


def ex(trace_id: str, value: float, at: float = T0, version: str = "2.4.0") -> Exemplar:
    return Exemplar(trace_id=trace_id, version=version, value=value, timestamp=at)


def test_slow_traces_are_deduplicated_and_slowest_first() -> None:
    exemplars = [
        ex("aaa", 0.30, T0 + 1),
        ex("bbb", 0.50, T0 + 2),
        ex("aaa", 0.40, T0 + 3),  # same trace seen again, slower: kept once with 0.40
        ex("ccc", 0.35, T0 + 4),
    ]
    evidence = select_evidence(exemplars, kind="slow", threshold=0.2, template=JAEGER, limit=10)
    assert [e.trace_id for e in evidence] == ["bbb", "aaa", "ccc"]
    assert [e.latency_seconds for e in evidence] == [0.50, 0.40, 0.35]
    assert evidence[1].timestamp == T0 + 3
    assert all(e.kind == "slow" and e.version == "2.4.0" for e in evidence)


def test_trace_ids_are_deduplicated_regardless_of_case_and_padding() -> None:
    exemplars = [ex("ABC123", 0.3), ex(" abc123 ", 0.4)]
    evidence = select_evidence(exemplars, kind="slow", threshold=None, template=JAEGER, limit=5)
    assert [e.trace_id for e in evidence] == ["abc123"]


def test_slow_needs_to_be_above_the_threshold() -> None:
    exemplars = [ex("at", 0.2), ex("below", 0.1), ex("above", 0.21)]
    evidence = select_evidence(exemplars, kind="slow", threshold=0.2, template=JAEGER, limit=5)
    assert [e.trace_id for e in evidence] == ["above"]


def test_equally_slow_traces_put_the_most_recent_first() -> None:
    exemplars = [ex("old", 0.3, T0), ex("new", 0.3, T0 + 60)]
    evidence = select_evidence(exemplars, kind="slow", threshold=None, template=JAEGER, limit=5)
    assert [e.trace_id for e in evidence] == ["new", "old"]


def test_errors_are_most_recent_first_and_keep_unknown_latency() -> None:
    exemplars = [ex("e1", 0.05, T0), ex("e2", math.nan, T0 + 30), ex("e3", 0.01, T0 + 10)]
    evidence = select_evidence(exemplars, kind="error", threshold=None, template=JAEGER, limit=5)
    assert [e.trace_id for e in evidence] == ["e2", "e3", "e1"]
    assert evidence[0].latency_seconds is None
    assert all(e.kind == "error" for e in evidence)


def test_limit_keeps_the_most_telling_traces() -> None:
    exemplars = [ex(f"t{i}", 0.1 * i) for i in range(1, 8)]
    evidence = select_evidence(exemplars, kind="slow", threshold=None, template=JAEGER, limit=2)
    assert [e.trace_id for e in evidence] == ["t7", "t6"]
    assert select_evidence(exemplars, kind="slow", threshold=None, template=JAEGER, limit=0) == ()


def test_exemplars_that_name_nothing_are_dropped() -> None:
    exemplars = [ex("", 0.9), ex("   ", 0.9), ex("nan", math.nan), ex("inf", math.inf)]
    assert select_evidence(exemplars, kind="slow", threshold=None, template=JAEGER, limit=5) == ()


def test_links_substitute_the_trace_id_and_leave_other_braces_alone() -> None:
    template = (
        'https://grafana.example/explore?left={"datasource":"tempo","queries":'
        '[{"query":"{trace_id}"}]}'
    )
    link = build_link(template, "4bf92f3577b34da6a3ce929d0e0e4736")
    assert '"query":"4bf92f3577b34da6a3ce929d0e0e4736"' in link
    assert link.startswith('https://grafana.example/explore?left={"datasource":"tempo"')
    assert "{trace_id}" not in link
    evidence = select_evidence(
        [ex("abc", 0.5)], kind="slow", threshold=0.1, template=JAEGER, limit=1
    )
    assert evidence[0].link == "http://jaeger:16686/trace/abc"


def test_links_quote_the_trace_id_so_it_cannot_change_the_url() -> None:
    link = build_link(JAEGER, "x/../../admin?a=b#c")
    assert link == "http://jaeger:16686/trace/x%2F..%2F..%2Fadmin%3Fa%3Db%23c"


def test_links_drop_credentials_from_the_template() -> None:
    link = build_link("https://user:s3cret@tempo.example/trace/{trace_id}?org=1", "abc")
    assert link == "https://tempo.example/trace/abc?org=1"
    assert "s3cret" not in link


def test_unknown_kind_and_negative_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        select_evidence([], kind="fast", threshold=None, template=JAEGER, limit=1)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        select_evidence([], kind="slow", threshold=None, template=JAEGER, limit=-1)


def test_attach_spans_adds_each_traces_timings() -> None:
    evidence = select_evidence(
        [ex("aaa", 0.5), ex("bbb", 0.4)], kind="slow", threshold=None, template=JAEGER, limit=5
    )
    known = {"aaa": (SpanTiming("model.infer", 0.41), SpanTiming("postprocess.serialize", 0.01))}
    asked: list[str] = []

    def lookup(trace_id: str) -> tuple[SpanTiming, ...]:
        asked.append(trace_id)
        return known.get(trace_id, ())

    attached = attach_spans(evidence, lookup)
    assert asked == ["aaa", "bbb"]
    assert attached[0].spans == known["aaa"]
    assert attached[1].spans == ()
    assert [e.trace_id for e in attached] == ["aaa", "bbb"]


def test_typical_traces_are_those_nearest_the_median_latency() -> None:
    latencies = [0.05, 0.09, 0.1, 0.11, 2.0, math.nan]
    exemplars = [ex(f"t{i}", value, T0 + i) for i, value in enumerate(latencies)]
    chosen = select_evidence(exemplars, kind=TYPICAL, threshold=None, template=JAEGER, limit=3)
    # The median is 0.1; 0.11 is as near as 0.09 (and later); NaN names nothing.
    assert [e.trace_id for e in chosen] == ["t2", "t3", "t1"]
    assert {e.kind for e in chosen} == {TYPICAL}
