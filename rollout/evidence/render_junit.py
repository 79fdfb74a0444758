"""junit.xml: one testcase per metric, for CI tools that show test results.

How verdicts map, and why:
- PASS -> a passing testcase.
- FAIL -> `<failure>`: a regression was confirmed; the message names the numbers.
- INCONCLUSIVE and NO_DATA -> `<error>`. Not `<skipped>`: most CI tools (GitHub test
  reporters, GitLab, Jenkins) show a suite with only passes and skips as green, and a gate
  that could not judge must not look green. Not `<failure>` either: nothing was shown to
  regress; the check could not be completed (too little data, or a query came back empty).
- When the decision is not a pass but no metric explains it (e.g. a rollback after a
  Prometheus outage, or no judgement at all), a `decision` testcase carries it, so the suite
  is never green while the rollout or gate was not.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from rollout.analysis.verdict import Comparison, Verdict
from rollout.evidence.render_common import (
    GOOD_DECISIONS,
    MISSING,
    change_text,
    decision_label,
    format_value,
    headline,
    metric_label,
    metric_unit,
    statistic_text,
    threshold_text,
)
from rollout.evidence.report import Report

# Characters XML 1.0 cannot carry even escaped; they would make the file unparseable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def render_junit(report: Report) -> str:
    cases = [_metric_case(report, c) for c in _comparisons(report)]
    if (decision := _decision_case(report)) is not None:
        cases.append(decision)
    failures = sum(1 for case in cases if case.find("failure") is not None)
    errors = sum(1 for case in cases if case.find("error") is not None)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors)}
    counts |= {"skipped": "0", "time": f"{max(report.finished_at - report.started_at, 0.0):.3f}"}

    suites = ET.Element("testsuites", {"name": "rollout", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": _xml(headline(report)), **counts})
    if report.started_at > 0:
        started = datetime.fromtimestamp(report.started_at, UTC).replace(tzinfo=None)
        suite.set("timestamp", started.isoformat(timespec="seconds"))
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(report):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    suite.extend(cases)
    out = ET.SubElement(suite, "system-out")
    out.text = _xml("\n".join([report.reason, *report.notes]))
    ET.indent(suites)
    body = ET.tostring(suites, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _comparisons(report: Report) -> tuple[Comparison, ...]:
    return report.judgement.comparisons if report.judgement is not None else ()


def _properties(report: Report) -> list[tuple[str, str]]:
    target = report.target
    judgement = report.judgement
    return [
        ("kind", report.kind),
        ("name", report.name),
        ("model", target.model),
        ("baseline", target.baseline),
        ("candidate", target.candidate),
        ("decision", report.decision),
        ("decided_by", (judgement.decided_by or "") if judgement else ""),
        ("policy", report.policy_name),
        ("alpha", f"{report.policy.alpha:g}"),
    ]


def _classname(report: Report) -> str:
    return _xml(f"{report.kind}.{report.target.model}")


def _metric_case(report: Report, comparison: Comparison) -> ET.Element:
    case = ET.Element(
        "testcase",
        {"classname": _classname(report), "name": _xml(comparison.metric), "time": "0"},
    )
    if comparison.verdict is Verdict.NO_REGRESSION:
        return case
    tag = "failure" if comparison.verdict is Verdict.FAIL else "error"
    outcome = ET.SubElement(
        case, tag, {"message": _xml(failure_message(comparison)), "type": comparison.verdict.value}
    )
    outcome.text = _xml(_details(comparison))
    return case


def failure_message(comparison: Comparison) -> str:
    """'P95 latency: candidate 145 ms vs baseline 102 ms, +42% (99% CI +31% .. +55%);
    e = 310 (p = 0.0032), threshold 100; n = 5,000 / 500; <reason>'."""
    unit = metric_unit(comparison.metric)
    candidate = format_value(comparison.candidate, unit)
    baseline = format_value(comparison.baseline, unit)
    change = change_text(comparison)
    parts = [
        f"{comparison.verdict.value} {metric_label(comparison.metric)}: candidate {candidate} "
        f"vs baseline {baseline}" + (f", {change}" if change != MISSING else "")
    ]
    if (statistic := statistic_text(comparison)) != MISSING:
        parts.append(f"{statistic}, e-value needed {threshold_text(comparison)}")
    parts.append(f"n = {comparison.baseline_n:,} / {comparison.candidate_n:,}")
    if comparison.reason:
        parts.append(comparison.reason)
    return "; ".join(parts)


def _details(comparison: Comparison) -> str:
    """Every number of the comparison, one per line; the ones the judge did not set left out."""
    numbers: list[tuple[str, object]] = [
        ("test", comparison.test),
        (comparison.effect_name or "effect", comparison.effect),
        ("interval", comparison.interval),
        ("confidence", comparison.confidence),
        ("statistic", comparison.statistic),
        ("p_value", comparison.p_value),
        ("e_value", comparison.e_value),
        ("threshold", comparison.threshold),
        *comparison.details,
    ]
    return "\n".join(f"{name}: {value}" for name, value in numbers if value is not None)


def _decision_case(report: Report) -> ET.Element | None:
    explained = any(c.verdict is not Verdict.NO_REGRESSION for c in _comparisons(report))
    if report.decision in GOOD_DECISIONS or explained:
        return None
    case = ET.Element(
        "testcase", {"classname": _classname(report), "name": "decision", "time": "0"}
    )
    tag = "failure" if report.decision in ("rolled_back", "fail") else "error"
    message = f"{decision_label(report.decision)}: {report.reason}"
    outcome = ET.SubElement(case, tag, {"message": _xml(message), "type": report.decision})
    outcome.text = _xml("\n".join([report.reason, *report.notes]))
    return case
