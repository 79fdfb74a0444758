"""The gate on a real Prometheus holding backfilled, messy synthetic series (issue 3's list).

Every scenario is a model in the shared backfill (tests/support/scenarios.py): three
pods per version, a counter reset, extra labels; the gate judges its last 15 minutes.
"""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rollout.cli import app
from rollout.demo.procs import free_port
from rollout.exit_codes import ExitCode
from rollout.gate import GateRequest, run_gate
from tests.support.backfill import BackfilledPrometheus
from tests.support.httpserve import serve_text
from tests.support.scenarios import AA_RUNS, BASELINE, CANDIDATE, GATE_WINDOW, aa_model


def gate_request(
    prometheus: BackfilledPrometheus | str, model: str, **changes: object
) -> GateRequest:
    url = prometheus if isinstance(prometheus, str) else prometheus.url
    end = time.time() - 3600 if isinstance(prometheus, str) else prometheus.dataset.end
    fields: dict[str, object] = {
        "prometheus_url": url,
        "model": model,
        "baseline": BASELINE,
        "candidate": CANDIDATE,
        "policy": "default",
        "window": None,
        "start": f"{end - GATE_WINDOW:.0f}",
        "end": f"{end:.0f}",
        "report_dir": None,
        "output_format": "text",
        "bearer_token_file": None,
        **changes,
    }
    return GateRequest(**fields)  # type: ignore[arg-type]


def run(request: GateRequest) -> tuple[ExitCode, str]:
    out = io.StringIO()
    code = run_gate(request, Console(file=out, width=120))
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("model", "expected", "says"),
    [
        ("gate-same", ExitCode.PROMOTED, "GATE PASS"),
        ("gate-p95-30", ExitCode.ROLLED_BACK, "exceeds the allowed +20%"),
        ("gate-p95-8", ExitCode.PROMOTED, "GATE PASS"),
        ("gate-errors", ExitCode.ROLLED_BACK, "candidate error rate"),
        ("gate-little", ExitCode.PAUSED, "too little data"),
        ("gate-unequal", ExitCode.PROMOTED, "GATE PASS"),
    ],
)
def test_scenarios(
    synthetic_prometheus: BackfilledPrometheus, model: str, expected: ExitCode, says: str
) -> None:
    code, output = run(gate_request(synthetic_prometheus, model))
    assert code == expected, output
    assert says in output


def test_coarse_buckets_cannot_show_the_same_regression_and_the_report_says_so(
    synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    """gate-p95-30's +30% on coarse buckets (... 75, 100, 150 ms ...): the baseline's P95
    (97 ms) lies in (75 ms, 100 ms], 1.2 x 100 ms is above the next bound, so only a
    regression past 150 / 75 = +100% can be shown. The gate does not fail it, and says
    in every report what it could not see."""
    reports = tmp_path / "reports"
    request = gate_request(synthetic_prometheus, "gate-p95-30-coarse", report_dir=reports)
    code, output = run(request)
    assert code in (ExitCode.PROMOTED, ExitCode.PAUSED), output
    says = "regressions under +100% cannot be shown with these buckets"
    assert says in output
    document = json.loads((reports / "report.json").read_text())
    assert document["decision"] in ("pass", "inconclusive") and says in document["reason"]
    assert says in (reports / "report.md").read_text()
    assert says in (reports / "junit.xml").read_text()


def test_no_candidate_series_exits_2_naming_the_empty_query(
    synthetic_prometheus: BackfilledPrometheus,
) -> None:
    code, output = run(gate_request(synthetic_prometheus, "gate-nocandidate"))
    assert code == ExitCode.PAUSED
    assert "GATE INCONCLUSIVE" in output
    assert "candidate" in output and "inference_requests_total{" in output


def test_an_injection_string_as_candidate_finds_nothing(
    synthetic_prometheus: BackfilledPrometheus,
) -> None:
    code, output = run(
        gate_request(synthetic_prometheus, "gate-same", candidate='x"} or vector(1)')
    )
    assert code == ExitCode.PAUSED, output


def test_unreachable_prometheus_exits_4() -> None:
    code, output = run(gate_request(f"http://127.0.0.1:{free_port()}", "gate-same"))
    assert code == ExitCode.INFRASTRUCTURE
    assert "metrics source failed" in output and "unreachable" in output


def test_garbage_answers_exit_4() -> None:
    server = serve_text("<html>a login page</html>", content_type="text/html")
    try:
        code, output = run(gate_request(server.url, "gate-same"))
    finally:
        server.stop()
    assert code == ExitCode.INFRASTRUCTURE and "answered garbage" in output


def test_reports_formats_and_the_github_step_summary(
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    reports = tmp_path / "reports"
    request = gate_request(
        synthetic_prometheus, "gate-p95-30", report_dir=reports, output_format="json"
    )
    code, output = run(request)
    assert code == ExitCode.ROLLED_BACK
    document = json.loads(output)  # stdout is the JSON document alone
    assert json.loads((reports / "report.json").read_text()) == document
    assert "gate-p95-30" in output
    junit = ET.parse(reports / "junit.xml").getroot()
    failures = [case for case in junit.iter("testcase") if case.find("failure") is not None]
    assert len(failures) == 1 and "+20%" in ET.tostring(failures[0], encoding="unicode")
    markdown = (reports / "report.md").read_text()
    assert summary.read_text().startswith("# earlier step\n")
    assert markdown.strip() in summary.read_text()
    assert "report.json" in capsys.readouterr().err
    # Every PromQL query of every look is in the report, evaluated at the look's end.
    queries = [q for look in document_looks(document) for q in look]
    assert len(queries) == 15 * 2  # the requests counter (every status) and the buckets


def document_looks(document: dict[str, object]) -> list[list[object]]:
    observations = document["observations"]
    assert isinstance(observations, list)
    return [look["queries"] for look in observations]


def test_looks_are_disjoint_and_add_up_when_the_analysis_window_is_wider(
    synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    """analysis.window 5m at a 1m interval: each look counts (previous end, end] exactly,
    the looks add up to the whole window's truth, and only the custom query sees 5m."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "steps: [{weight: 50, hold: 1m}]\n"
        "analysis: {interval: 1m, window: 5m}\n"
        "customMetrics:\n"
        "  - name: served\n"
        "    query: sum(increase(inference_requests_total{version_selector}[{window}]))\n"
        "    maxRelativeChange: 10\n"
    )
    reports = tmp_path / "reports"
    request = gate_request(synthetic_prometheus, "counts", policy=str(policy), report_dir=reports)
    code, output = run(request)
    assert code in (ExitCode.PROMOTED, ExitCode.PAUSED, ExitCode.ROLLED_BACK), output
    looks = json.loads((reports / "report.json").read_text())["observations"]
    end = synthetic_prometheus.dataset.end
    start, truth = end - GATE_WINDOW, synthetic_prometheus.dataset.truth
    assert len(looks) == 15 and looks[0]["start"] == start and looks[-1]["end"] == end
    for before, after in pairwise(looks):
        assert before["end"] == after["start"]
    for look in looks:
        assert look["end"] - look["start"] == 60
        assert (
            look["baseline"]["requests"]
            == truth.counts("counts", BASELINE, look["start"], look["end"]).requests
        )
    for role, version in (("baseline", BASELINE), ("candidate", CANDIDATE)):
        whole = truth.counts("counts", version, start, end)
        assert sum(look[role]["requests"] for look in looks) == whole.requests
        assert sum(look[role]["errors"] for look in looks) == whole.errors
    custom = [q["promql"] for look in looks for q in look["queries"] if q["signal"] != "requests"]
    assert "[60s]" in next(q for q in custom if "increase(" in q)  # the first look: clipped
    assert all("[300s]" in q for q in custom[-4:] if "increase(" in q)
    assert all("[360s]" in q["promql"] for q in looks[-1]["queries"][:2])


def test_the_cli_command_runs_the_gate(synthetic_prometheus: BackfilledPrometheus) -> None:
    end = synthetic_prometheus.dataset.end
    args = ["gate", "--prometheus-url", synthetic_prometheus.url, "--model", "gate-errors"]
    args += ["--baseline", BASELINE, "--candidate", CANDIDATE, "--policy", "default"]
    args += ["--start", f"{end - GATE_WINDOW:.0f}", "--end", f"{end:.0f}", "--format", "junit"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    cases = list(ET.fromstring(result.stdout).iter("testcase"))
    assert [c.find("failure") is not None for c in cases].count(True) == 1


@pytest.mark.slow
def test_aa_backfills_pass_at_least_19_of_20_seeds(
    synthetic_prometheus: BackfilledPrometheus,
) -> None:
    """Acceptance: 15 minutes at 40 req/s per version, same distribution, 20 seeds."""
    codes = [run(gate_request(synthetic_prometheus, aa_model(seed)))[0] for seed in range(AA_RUNS)]
    assert sum(code == ExitCode.PROMOTED for code in codes) >= 19, codes
