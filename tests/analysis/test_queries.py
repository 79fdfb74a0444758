"""PromQL templates: exact shapes, escaping, and that any label value stays a literal."""

from __future__ import annotations

import ast
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.analysis.observation import Target
from rollout.analysis.queries import (
    LOOKBACK_SECONDS,
    batch_queries,
    custom_query,
    exemplar_selector,
    range_literal,
    signal_queries,
    string_literal,
    versions_matcher,
)
from rollout.spec import CustomMetric, MetricNames

TARGET = Target(model="fraud", baseline="2.3.1", candidate="2.4.0")
INJECTION = '2.4.0"} or vector(1) #'


def test_one_raw_range_selector_per_signal_covers_both_versions() -> None:
    queries = signal_queries(MetricNames(), TARGET, 60)
    selector = 'model_name="fraud",model_version=~"^(?:2\\\\.3\\\\.1|2\\\\.4\\\\.0)$"'
    # 60 s of look plus 300 s of lookback: each series' last sample at or before the start.
    assert queries.requests == f"inference_requests_total{{{selector}}}[360s]"
    assert queries.latency == f"inference_latency_seconds_bucket{{{selector}}}[360s]"
    assert "increase(" not in queries.requests + queries.latency
    assert LOOKBACK_SECONDS == 300.0


def test_one_query_per_signal_for_every_target() -> None:
    targets = [TARGET, Target("fraud", "2.4.0", "2.5.0"), Target("spam", "1.0", "1.1")]
    queries = batch_queries(MetricNames(), targets, 60)
    # Every model and every version once, each escaped; 2 queries whatever the number.
    assert queries.requests == (
        'inference_requests_total{model_name=~"^(?:fraud|spam)$",'
        'model_version=~"^(?:2\\\\.3\\\\.1|2\\\\.4\\\\.0|2\\\\.5\\\\.0|1\\\\.0|1\\\\.1)$"}[360s]'
    )
    assert queries.latency.startswith('inference_latency_seconds_bucket{model_name=~"^(?:fraud|')
    # What is sent: both signals in one selector, the same matchers and range.
    names = '__name__=~"^(?:inference_requests_total|inference_latency_seconds_bucket)$"'
    assert queries.combined == "{" + names + "," + queries.requests.split("{", 1)[1]
    # One model: the plain matcher, the same strings as one target's.
    one = batch_queries(MetricNames(), targets[:2], 60).requests
    assert one.startswith('inference_requests_total{model_name="fraud",model_version=~')
    assert batch_queries(MetricNames(), [TARGET], 60) == signal_queries(MetricNames(), TARGET, 60)
    odd = batch_queries(MetricNames(), [TARGET, Target(INJECTION, "1", "2")], 60).requests
    assert "vector(1)" not in odd
    with pytest.raises(ValueError, match="at least one target"):
        batch_queries(MetricNames(), [], 60)


def test_the_range_is_the_look_plus_the_lookback() -> None:
    assert signal_queries(MetricNames(), TARGET, 900).requests.endswith("[1200s]")
    assert signal_queries(MetricNames(), TARGET, 1.5).latency.endswith("[301500ms]")
    with pytest.raises(ValueError, match="positive"):
        signal_queries(MetricNames(), TARGET, 0)


def test_metric_and_label_names_come_from_the_policy() -> None:
    names = MetricNames(
        requests="http_requests_total",
        latency="http_duration_seconds",
        model_label="app",
        version_label="track",
        status_label="code",
        error_status="5xx",
    )
    queries = signal_queries(names, TARGET, 90)
    assert queries.requests.startswith('http_requests_total{app="fraud",track=~')
    # Every status: errors are split from requests by the status label, in Python.
    assert "code" not in queries.requests
    assert queries.latency.startswith('http_duration_seconds_bucket{app="fraud",track=~')
    assert queries.latency.endswith("[390s]")


def test_injection_string_is_quoted_not_executed() -> None:
    target = Target(model="fraud", baseline="2.3.1", candidate=INJECTION)
    queries = signal_queries(MetricNames(), target, 60)
    # Escaped twice over (regex, then string): the matcher still closes where it should.
    assert queries.requests == (
        "inference_requests_total{"
        r'model_name="fraud",model_version=~"^(?:2\\.3\\.1|2\\.4\\.0\\\"\\}\\ or'
        r'\\ vector\\(1\\)\\ \\#)$"}[360s]'
    )
    assert "vector(1)" not in queries.requests


def test_ranges_are_whole_seconds_or_milliseconds() -> None:
    assert range_literal(60) == "60s"
    assert range_literal(900.0) == "900s"
    assert range_literal(1.5) == "1500ms"
    with pytest.raises(ValueError, match="positive"):
        range_literal(0)


def test_custom_query_gets_one_versions_selector_and_the_window() -> None:
    metric = CustomMetric(
        name="cpu",
        query="avg(rate(process_cpu_seconds_total{version_selector}[{window}]))",
        max_relative_change=0.5,
    )
    query = custom_query(metric, MetricNames(), "fraud", "2.4.0", 120)
    assert query == (
        'avg(rate(process_cpu_seconds_total{model_name="fraud",model_version="2.4.0"}[120s]))'
    )
    doubled = CustomMetric(name="x", query="sum(m{{version_selector}})", max_value=1)
    assert custom_query(doubled, MetricNames(), "fraud", "2.4.0", 60) == (
        'sum(m{model_name="fraud",model_version="2.4.0"})'
    )


def test_exemplar_selectors() -> None:
    slow = exemplar_selector(MetricNames(), "fraud", "2.4.0", errors_only=False)
    assert slow == 'inference_latency_seconds_bucket{model_name="fraud",model_version="2.4.0"}'
    failed = exemplar_selector(MetricNames(), "fraud", "2.4.0", errors_only=True)
    assert failed == (
        'inference_requests_total{model_name="fraud",model_version="2.4.0",status="error"}'
    )


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        string_literal("a\ud800")


# PromQL string escapes are Go's; on the characters string_literal emits they mean the same
# as Python's, so Python's parser is an independent decoder. The real-Prometheus round trip
# is in tests/analysis/test_prometheus.py.
@given(st.text())
def test_any_string_round_trips_as_a_string_literal(value: str) -> None:
    literal = string_literal(value)
    assert ast.literal_eval(literal) == value
    assert "\n" not in literal


@given(st.text(), st.text())
def test_any_string_round_trips_as_a_regex_literal(value: str, other: str) -> None:
    pattern = ast.literal_eval(versions_matcher("v", (value, "x"))[len("v=~") :])
    assert re.fullmatch(pattern, value)
    assert re.fullmatch(pattern, other) is None or other in (value, "x")
