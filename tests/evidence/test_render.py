"""The reports a person or a CI tool reads: what each format must show, and stay valid."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.analysis.observation import (
    Bucket,
    Observation,
    QueryRecord,
    Target,
    VersionCounts,
)
from rollout.analysis.verdict import Comparison, Judgement, Verdict
from rollout.evidence.render import (
    append_step_summary,
    render_json,
    render_junit,
    render_markdown,
    render_text,
    write_reports,
)
from rollout.evidence.render_common import change_text
from rollout.evidence.report import Report, SpanTiming, TraceEvidence, WeightChange
from rollout.routers.base import Weights
from rollout.spec import Policy

T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC
TARGET = Target(model="fraud-detector", baseline="2.3.1", candidate="2.4.0")
POLICY = Policy.model_validate(
    {"name": "default", "steps": [{"weight": 10, "hold": "5m"}], "minRequests": 500}
)
REQUESTS_QUERY = (
    'sum by (model_version) (increase(inference_requests_total{model_name="fraud-detector",'
    'model_version=~"2.3.1|2.4.0"}[5m]))'
)
LATENCY_QUERY = (
    "sum by (model_version, le) (increase(inference_latency_seconds_bucket"
    '{model_name="fraud-detector"}[5m]))'
)


# ---------------------------------------------------------------------------- builders


def latency(verdict: Verdict, ratio: float, low: float, high: float, **kw: Any) -> Comparison:
    values: dict[str, Any] = {
        "metric": "latency_p95",
        "verdict": verdict,
        "baseline": 0.102,
        "candidate": 0.102 * ratio,
        "effect": ratio,
        "effect_name": "p95_ratio",
        "interval": (low, high),
        "confidence": 0.99,
        "test": "mixture SPRT on tail mass",
        "p_value": 0.0032,
        "e_value": 310.0,
        "threshold": 100.0,
        "baseline_n": 5000,
        "candidate_n": 500,
        "reason": "tail mass above baseline P95 x 1.2",
        "details": (("mann_whitney_p", 0.001),),
    }
    return Comparison(**(values | kw))


def errors(verdict: Verdict, base: float, cand: float, low: float, high: float) -> Comparison:
    return Comparison(
        metric="error_rate",
        verdict=verdict,
        baseline=base,
        candidate=cand,
        effect=cand / base,
        effect_name="error_rate_ratio",
        interval=(low, high),
        confidence=0.99,
        test="mixture SPRT on conditional binomial",
        p_value=0.0004 if verdict is Verdict.FAIL else 0.6,
        e_value=2500.0 if verdict is Verdict.FAIL else 1.7,
        threshold=100.0,
        baseline_n=5000,
        candidate_n=500,
    )


def observation(*, candidate: VersionCounts | None = None, empty: bool = False) -> Observation:
    queries = (
        QueryRecord("requests", REQUESTS_QUERY, T0 + 300, 1 if empty else 2),
        QueryRecord("latency", LATENCY_QUERY, T0 + 300, 26),
    )
    if empty:
        queries = (replace(queries[0], note="empty result for candidate 2.4.0"), queries[1])
    buckets = (Bucket(0.1, 4000), Bucket(0.25, 4950), Bucket(math.inf, 5000))
    return Observation(
        start=T0,
        end=T0 + 300,
        baseline=VersionCounts(requests=5000, errors=25, buckets=buckets),
        candidate=candidate or VersionCounts(requests=500, errors=3, buckets=buckets),
        queries=queries,
        problems=("requests: no series for candidate 2.4.0",) if empty else (),
    )


def evidence() -> tuple[TraceEvidence, ...]:
    return (
        TraceEvidence(
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            version="2.4.0",
            kind="slow",
            latency_seconds=0.312,
            timestamp=T0 + 120,
            link="http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736",
            spans=(SpanTiming("feature_store.get_features", 0.02), SpanTiming("model.infer", 0.28)),
        ),
        TraceEvidence(
            trace_id="00f067aa0ba902b7aaaaaaaaaaaaaaaa",
            version="2.4.0",
            kind="slow",
            latency_seconds=0.25,
            timestamp=T0 + 150,
            link="http://jaeger:16686/trace/00f067aa0ba902b7aaaaaaaaaaaaaaaa",
        ),
    )


def report(
    comparisons: tuple[Comparison, ...],
    *,
    decision: str,
    verdict: Verdict,
    decided_by: str | None = None,
    kind: str = "rollout",
    reason: str = "",
    **kw: Any,
) -> Report:
    values: dict[str, Any] = {
        "kind": kind,
        "name": "fraud" if kind == "rollout" else "gate",
        "target": TARGET,
        "decision": decision,
        "reason": reason or f"{decision} after analysis",
        "policy": POLICY,
        "judgement": Judgement(verdict, comparisons, decided_by, reason or "judged"),
        "observations": (observation(),),
        "weight_changes": (
            WeightChange(T0, Weights(90, 10), "step 1"),
            WeightChange(T0 + 300, Weights(100, 0), "rollback"),
        ),
        "started_at": T0,
        "finished_at": T0 + 310,
    }
    return Report(**(values | kw))


def latency_rollback() -> Report:
    return report(
        (
            latency(Verdict.FAIL, 1.42, 1.31, 1.55),
            errors(Verdict.NO_REGRESSION, 0.005, 0.0052, 0.7, 1.45),
        ),
        decision="rolled_back",
        verdict=Verdict.FAIL,
        decided_by="latency_p95",
        reason="P95 latency of 2.4.0 regressed by 42%, above the allowed 20%",
        evidence=evidence(),
        notes=("traffic returned to 2.3.1 before the evidence was written",),
    )


def errors_rollback() -> Report:
    return report(
        (
            latency(Verdict.NO_REGRESSION, 1.01, 0.95, 1.08, e_value=0.8, p_value=1.0),
            errors(Verdict.FAIL, 0.005, 0.02, 2.6, 6.1),
        ),
        decision="rolled_back",
        verdict=Verdict.FAIL,
        decided_by="error_rate",
        reason="error rate of 2.4.0 rose from 0.5% to 2%",
    )


def promotion() -> Report:
    return report(
        (
            latency(Verdict.NO_REGRESSION, 0.88, 0.82, 0.95, e_value=0.2, p_value=1.0),
            errors(Verdict.NO_REGRESSION, 0.005, 0.005, 0.7, 1.4),
        ),
        decision="promoted",
        verdict=Verdict.NO_REGRESSION,
        reason="no regression at any step",
        weight_changes=(WeightChange(T0 + 300, Weights(0, 100), "promoted"),),
    )


def gate_no_data() -> Report:
    empty = VersionCounts(requests=None, errors=None, buckets=None)
    no_data = Comparison(
        metric="latency_p95",
        verdict=Verdict.NO_DATA,
        baseline=0.102,
        candidate=None,
        effect=None,
        effect_name="p95_ratio",
        interval=None,
        confidence=None,
        test="mixture SPRT on tail mass",
        reason="the latency query returned no series for candidate 2.4.0",
    )
    return report(
        (
            no_data,
            replace(
                no_data,
                metric="error_rate",
                baseline=0.005,
                effect_name="error_rate_ratio",
                test="mixture SPRT on conditional binomial",
                reason="the errors query returned no series for candidate 2.4.0",
            ),
        ),
        kind="gate",
        decision="inconclusive",
        verdict=Verdict.NO_DATA,
        decided_by="latency_p95",
        reason="requests query came back empty for candidate 2.4.0",
        observations=(observation(candidate=empty, empty=True),),
        weight_changes=(),
    )


def paused_inconclusive() -> Report:
    thin = latency(
        Verdict.INCONCLUSIVE,
        1.1,
        0.6,
        2.0,
        candidate_n=40,
        e_value=2.0,
        p_value=0.5,
        reason="40 candidate requests, policy needs 500",
    )
    return report(
        (
            thin,
            replace(
                errors(Verdict.NO_REGRESSION, 0.005, 0.0, 0.0, 3.0), verdict=Verdict.INCONCLUSIVE
            ),
        ),
        decision="paused",
        verdict=Verdict.INCONCLUSIVE,
        decided_by="latency_p95",
        reason="not enough candidate traffic to decide: paused for a person",
    )


ALL_REPORTS = {
    "latency_rollback": latency_rollback,
    "errors_rollback": errors_rollback,
    "promotion": promotion,
    "gate_no_data": gate_no_data,
    "paused_inconclusive": paused_inconclusive,
}


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("build", ALL_REPORTS.values(), ids=ALL_REPORTS.keys())
def test_json_is_valid_and_complete_for_every_outcome(build: Any) -> None:
    built: Report = build()
    data = strict_json(render_json(built))
    assert data["schema_version"] == 1
    assert data["decision"] == built.decision
    assert data["target"] == {"model": "fraud-detector", "baseline": "2.3.1", "candidate": "2.4.0"}
    assert data["policy"]["minRequests"] == 500  # the policy as the user writes it
    assert data["analysis"]["quantile"] == 0.95
    assert data["analysis"]["alpha"] == 0.01
    assert len(data["judgement"]["comparisons"]) == len(built.judgement.comparisons)  # type: ignore[union-attr]


def test_json_keeps_every_number_behind_a_rollback() -> None:
    data = strict_json(render_json(latency_rollback()))
    judgement = data["judgement"]
    assert judgement["verdict"] == "FAIL"
    assert judgement["decided_by"] == "latency_p95"
    p95 = judgement["comparisons"][0]
    assert p95["metric"] == "latency_p95"
    assert p95["effect"] == 1.42
    assert p95["interval"] == {"low": 1.31, "high": 1.55}
    assert p95["confidence"] == 0.99
    assert (p95["e_value"], p95["p_value"], p95["threshold"]) == (310.0, 0.0032, 100.0)
    assert (p95["baseline_n"], p95["candidate_n"]) == (5000, 500)
    assert p95["change"] == "+42% (99% CI +31% .. +55%)"
    assert p95["details"] == {"mann_whitney_p": 0.001}
    assert "regressed by 42%" in data["reason"]


def test_json_lists_every_query_with_time_and_series() -> None:
    data = strict_json(render_json(gate_no_data()))
    look = data["observations"][0]
    queries = {q["signal"]: q for q in look["queries"]}
    assert queries["requests"]["promql"] == REQUESTS_QUERY
    assert queries["requests"]["evaluated_at"] == T0 + 300
    assert queries["requests"]["evaluated_at_utc"] == "2024-05-01 12:05:00 UTC"
    assert queries["requests"]["series"] == 1
    assert queries["requests"]["note"] == "empty result for candidate 2.4.0"
    assert look["candidate"] == {
        "requests": None,
        "errors": None,
        "error_rate": None,
        "buckets": None,
    }
    assert look["baseline"]["error_rate"] == 25 / 5000
    assert look["window_seconds"] == 300
    assert look["problems"] == ["requests: no series for candidate 2.4.0"]


def test_json_has_trace_evidence_with_links_and_span_timings() -> None:
    data = strict_json(render_json(latency_rollback()))
    first, second = data["evidence"]
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["link"] == "http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["model_infer_seconds"] == 0.28
    assert {"name": "model.infer", "duration_seconds": 0.28} in first["spans"]
    assert second["model_infer_seconds"] is None
    assert [w["candidate"] for w in data["weight_changes"]] == [10, 0]
    assert data["notes"] == ["traffic returned to 2.3.1 before the evidence was written"]


def test_json_writes_nan_and_inf_as_strings_never_invalid_tokens() -> None:
    odd = latency(Verdict.NO_DATA, math.inf, -math.inf, math.nan, baseline=math.nan)
    odd = replace(odd, details=(("tail_mass", math.nan),))
    built = report((odd,), decision="inconclusive", verdict=Verdict.NO_DATA, kind="gate")
    data = strict_json(render_json(built))
    comparison = data["judgement"]["comparisons"][0]
    assert comparison["effect"] == "+Inf"
    assert comparison["baseline"] == "NaN"
    assert comparison["interval"] == {"low": "-Inf", "high": "NaN"}
    assert comparison["details"] == {"tail_mass": "NaN"}
    assert data["observations"][0]["baseline"]["buckets"][-1] == {"le": "+Inf", "count": 5000}


# ---------------------------------------------------------------------------- Markdown


def test_markdown_rollback_shows_headline_numbers_and_links() -> None:
    md = render_markdown(latency_rollback())
    first_line = md.splitlines()[0]
    assert first_line.startswith("## ")
    assert "Rolled back: fraud-detector 2.4.0 (baseline 2.3.1)" in first_line
    assert "regressed by 42%" in md
    assert "+42% (99% CI +31% .. +55%)" in md
    assert "102 ms" in md and "145 ms" in md
    assert "e = 310 (p = 0.0032)" in md
    assert "5,000 / 500" in md
    assert (
        "[`4bf92f3577b34da6a3ce929d0e0e4736`](http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736)"
        in md
    )
    assert "| 312 ms | 280 ms |" in md  # latency and model.infer of the first trace
    assert "❌ FAIL" in md and "✅ NO_REGRESSION_YET" in md and "PASS" not in md
    assert "2024-05-01 12:00:00 UTC .. 2024-05-01 12:05:00 UTC" in md


def test_markdown_puts_queries_in_a_collapsed_block() -> None:
    md = render_markdown(latency_rollback())
    details = md[md.index("<details>") : md.index("</details>")]
    assert "<summary>PromQL queries (2)</summary>" in details
    assert REQUESTS_QUERY in details
    assert LATENCY_QUERY in details
    assert "evaluated at 2024-05-01 12:05:00 UTC" in details
    assert "26 series" in details


def test_markdown_promotion_states_the_improvement() -> None:
    md = render_markdown(promotion())
    assert "Promoted: fraud-detector 2.4.0 (baseline 2.3.1)" in md
    assert "P95 latency -12% (99% CI -18% .. -5.0%)" in md
    assert "error rate unchanged (+0.0%, 99% CI -30% .. +40%)" in md


def test_markdown_errors_rollback_names_the_rates() -> None:
    md = render_markdown(errors_rollback())
    assert "Rolled back" in md
    assert "error rate +300% (99% CI +160% .. +510%)" in md
    assert "| 0.5% | 2% |" in md
    assert "Decided by `error_rate`" in md


def test_markdown_no_data_names_the_empty_query() -> None:
    md = render_markdown(gate_no_data())
    assert "Gate inconclusive" in md
    assert "P95 latency: no data" in md
    assert "requests query came back empty for candidate 2.4.0" in md
    assert "NO\\_DATA" not in md  # verdict cells are ours, not escaped text
    assert "⚠️ NO_DATA" in md
    assert "requests: no series for candidate 2.4.0" in md


def test_markdown_escapes_text_that_would_break_tables_or_inject_html() -> None:
    built = replace(
        latency_rollback(),
        notes=("<script>alert(1)</script> | col",),
        weight_changes=(WeightChange(T0, Weights(90, 10), "a | b\nc"),),
        evidence=(replace(evidence()[0], link="javascript:alert(1)"),),
    )
    md = render_markdown(built)
    assert "<script>" not in md
    assert "&lt;script>" in md
    weight_rows = [line for line in md.splitlines() if "step" in line or "a \\| b" in line]
    assert weight_rows and all(re.sub(r"\\\|", "", row).count("|") == 5 for row in weight_rows)
    assert "](javascript:" not in md


# ---------------------------------------------------------------------------- JUnit


def cases(xml: str) -> list[ET.Element]:
    root = ET.fromstring(xml)
    return root.findall("./testsuite/testcase")


def test_junit_has_one_testcase_per_metric_and_failure_names_the_numbers() -> None:
    xml = render_junit(latency_rollback())
    found = cases(xml)
    assert [c.get("name") for c in found] == ["latency_p95", "error_rate"]
    failure = found[0].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "145 ms" in message and "102 ms" in message
    assert "+42% (99% CI +31% .. +55%)" in message
    assert "e = 310" in message and "e-value needed 100" in message
    assert found[1].find("failure") is None and found[1].find("error") is None
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")


def test_junit_errors_rollback_fails_on_error_rate() -> None:
    found = cases(render_junit(errors_rollback()))
    failure = found[1].find("failure")
    assert failure is not None
    assert "candidate 2% vs baseline 0.5%" in failure.get("message", "")


def test_junit_no_data_and_inconclusive_are_errors_never_green() -> None:
    for build in (gate_no_data, paused_inconclusive):
        xml = render_junit(build())
        found = cases(xml)
        assert len(found) == 2
        assert all(c.find("error") is not None for c in found)
        assert "<skipped" not in xml
    message = cases(render_junit(gate_no_data()))[0].find("error").get("message", "")  # type: ignore[union-attr]
    assert "NO_DATA" in message and "no series for candidate 2.4.0" in message


def test_junit_promotion_passes_every_testcase() -> None:
    xml = render_junit(promotion())
    found = cases(xml)
    assert len(found) == 2
    assert all(len(c) == 0 for c in found)


def test_junit_rollback_without_a_failing_metric_still_fails() -> None:
    outage = replace(
        promotion(),
        decision="rolled_back",
        reason="Prometheus unreachable for 5m: traffic returned to the baseline",
    )
    found = cases(render_junit(outage))
    assert [c.get("name") for c in found] == ["latency_p95", "error_rate", "decision"]
    failure = found[2].find("failure")
    assert failure is not None and "Prometheus unreachable" in failure.get("message", "")


def test_junit_stays_well_formed_with_hostile_text() -> None:
    hostile = 'a <b> & "c" \x1b[31mred\x00 ]]> \ud800'
    built = replace(
        latency_rollback(),
        reason=hostile,
        notes=(hostile,),
        judgement=Judgement(
            Verdict.FAIL, (latency(Verdict.FAIL, 1.42, 1.31, 1.55, reason=hostile),), None, hostile
        ),
    )
    xml = render_junit(built)
    failure = cases(xml)[0].find("failure")
    assert failure is not None
    assert 'a <b> & "c"' in failure.get("message", "")


# ---------------------------------------------------------------------------- text


@pytest.mark.parametrize("build", ALL_REPORTS.values(), ids=ALL_REPORTS.keys())
def test_text_is_short_plain_and_has_the_decision(build: Any) -> None:
    built: Report = build()
    out = render_text(built)
    assert len(out.splitlines()) <= 20
    assert "\x1b" not in out
    assert out.isascii()
    assert f"decision: {built.decision}" in out


def test_text_rollback_table_reads_at_a_glance() -> None:
    lines = render_text(latency_rollback()).splitlines()
    assert lines[0] == "ROLLED BACK: fraud-detector 2.4.0 (baseline 2.3.1)"
    assert lines[1].split() == ["metric", "baseline", "candidate", "change", "verdict"]
    assert "P95 latency" in lines[2] and "102 ms" in lines[2] and "145 ms" in lines[2]
    assert "+42% (99% CI +31% .. +55%)" in lines[2] and lines[2].endswith("FAIL")
    assert lines[3].startswith("error rate") and lines[3].endswith("NO_REGRESSION_YET")
    assert any("jaeger:16686/trace/4bf92f35" in line for line in lines)


def test_text_stays_short_with_many_metrics_and_strips_control_codes() -> None:
    many = tuple(
        replace(latency(Verdict.NO_REGRESSION, 1.0, 0.9, 1.1), metric=f"custom:kpi_{i}")
        for i in range(30)
    )
    built = report(
        many,
        decision="promoted",
        verdict=Verdict.NO_REGRESSION,
        reason="\x1b[31mall good\x1b[0m\nreally",
    )
    out = render_text(built)
    assert len(out.splitlines()) <= 20
    assert "18 more metrics in the report" in out
    assert "\x1b" not in out
    assert "decision: promoted - [31mall good [0m really" in out


# ---------------------------------------------------------------------------- files


def test_write_reports_creates_the_directory_and_four_valid_files(tmp_path: Path) -> None:
    directory = tmp_path / "reports" / "run-1"
    paths = write_reports(latency_rollback(), directory)
    assert paths == {
        "json": directory / "report.json",
        "markdown": directory / "report.md",
        "junit": directory / "junit.xml",
        "html": directory / "report.html",
    }
    assert strict_json(paths["json"].read_text())["decision"] == "rolled_back"
    assert paths["markdown"].read_text().startswith("## ")
    assert len(cases(paths["junit"].read_text())) == 2
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["junit.xml", "report.html", "report.json", "report.md"]


def test_write_reports_replaces_an_earlier_report(tmp_path: Path) -> None:
    write_reports(latency_rollback(), tmp_path)
    write_reports(promotion(), tmp_path)
    assert strict_json((tmp_path / "report.json").read_text())["decision"] == "promoted"
    assert len(list(tmp_path.iterdir())) == 4


def test_step_summary_appends_after_what_other_steps_wrote(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("# Build\nok")  # no trailing newline
    append_step_summary(latency_rollback(), summary)
    append_step_summary(promotion(), summary)
    content = summary.read_text()
    assert content.startswith("# Build\nok\n\n## ")
    assert content.count("Rolled back: fraud-detector") == 1
    assert content.index("Rolled back") < content.index("Promoted: fraud-detector")


def test_step_summary_creates_a_missing_file(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    append_step_summary(gate_no_data(), summary)
    assert summary.read_text() == render_markdown(gate_no_data())


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80), st.floats(allow_nan=True, allow_infinity=True))
def test_any_text_and_any_float_leave_json_and_junit_valid(words: str, number: float) -> None:
    comparison = latency(Verdict.FAIL, number, number, number, reason=words, baseline=number)
    built = replace(
        latency_rollback(),
        reason=words,
        notes=(words,),
        judgement=Judgement(Verdict.FAIL, (comparison,), words, words),
    )
    data = strict_json(render_json(built))
    assert data["reason"] == words
    found = cases(render_junit(built))
    assert len(found) == 1 and found[0].find("failure") is not None
    assert len(render_text(built).splitlines()) <= 20


def test_reports_with_unencodable_text_are_still_written(tmp_path: Path) -> None:
    built = replace(latency_rollback(), notes=("label \ud800 from a broken exporter",))
    paths = write_reports(built, tmp_path)
    assert "from a broken exporter" in strict_json(paths["json"].read_text())["notes"][0]
    append_step_summary(built, tmp_path / "summary.md")
    assert "from a broken exporter" in (tmp_path / "summary.md").read_text()


# ---------------------------------------------------------------------------- numbers people read


def test_an_error_rate_from_zero_changes_by_percentage_points_not_n_a() -> None:
    from_zero = replace(
        errors(Verdict.FAIL, 0.001, 0.0667, 1.0, 1.0),
        baseline=0.0,
        effect=None,
        interval=None,
        confidence=None,
    )
    assert change_text(from_zero) == "+6.67 pp"
    # A near-zero baseline with a huge ratio interval: points, and the ratio as multipliers.
    near_zero = errors(Verdict.FAIL, 0.0001, 0.0667, 0.0, 796.0)
    text = change_text(near_zero)
    assert text.startswith("+6.66 pp") and "x0 .. x796" in text
    assert "79500%" not in text and "-100%" not in text
    # An ordinary rate keeps the relative change.
    assert change_text(errors(Verdict.FAIL, 0.005, 0.02, 2.6, 6.1)).startswith("+300%")


def test_markdown_keeps_arrows_and_names_the_threshold_and_the_policy_file() -> None:
    built = replace(
        latency_rollback(),
        notes=("weights 100/0 -> 80/20",),
        policy=replace_policy_name(latency_rollback().policy, "custom"),  # a file without `name:`
        policy_source="policies/mine.yaml",
    )
    md = render_markdown(built)
    assert "100/0 -> 80/20" in md and "-&gt;" not in md
    assert "e-value needed" in md and "Threshold" not in md
    assert "policies/mine.yaml" in md and "`custom`" not in md
    junit = render_junit(built)
    assert 'value="policies/mine.yaml"' in junit and "e-value needed" in junit
    named = replace(built, policy=replace_policy_name(built.policy, "strict"))
    assert "`strict`" in render_markdown(named)  # a policy's own name wins


def replace_policy_name(policy: Policy, name: str) -> Policy:
    return policy.model_copy(update={"name": name})
