"""Whole rollouts on the real local stack: two model servers, HAProxy, Prometheus, load.

`rollout run` and `rollout demo` run as the user runs them (subprocesses); where the
traffic ends up is checked through HAProxy itself, by counting which version answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollout.demo.launcher import CANDIDATE_VERSION, DemoStack
from rollout.demo.load import run_load
from rollout.evidence.traces import find_trace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROLLOUT = [sys.executable, "-m", "rollout.cli"]
RPS = 60.0


def rollout(
    *args: str, timeout: float = 240.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROLLOUT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )


def answers_through_haproxy(stack: DemoStack, requests: int = 60) -> dict[str, int]:
    assert stack.haproxy is not None
    result = run_load(f"{stack.haproxy.url}/predict", 30.0, 10.0, max_requests=requests)
    return dict(result.by_version)


def trace_ids(report: dict[str, object], version: str) -> list[str]:
    evidence = report["evidence"]
    assert isinstance(evidence, list)
    return [e["trace_id"] for e in evidence if e["version"] == version]


@pytest.mark.parametrize(
    ("scenario", "exit_code", "serving"),
    [("latency", 1, "v1"), ("errors", 1, "v1"), ("healthy", 0, "v2")],
)
def test_rollout_run_ends_with_traffic_where_the_verdict_puts_it(
    tmp_path: Path, scenario: str, exit_code: int, serving: str
) -> None:
    with DemoStack(tmp_path / "stack", scenario, RPS, seed=3).start() as stack:
        spec = stack.write_spec(tmp_path / "rollout.yaml")
        done = rollout(
            "run", str(spec), "--state-dir", str(tmp_path / "state"),
            "--report-dir", str(tmp_path / "reports"),
        )  # fmt: skip
        assert done.returncode == exit_code, done.stdout + done.stderr
        # Through HAProxy: every answer comes from the version the decision chose.
        assert answers_through_haproxy(stack) == {serving: 60}

        report = json.loads((tmp_path / "reports" / "report.json").read_text())
        assert report["decision"] == ("promoted" if exit_code == 0 else "rolled_back")
        queries = [q["promql"] for o in report["observations"] for q in o["queries"]]
        assert queries and all("model_version" in q for q in queries)
        if exit_code == 1:
            assert report["judgement"]["decided_by"] == (
                "latency_p95" if scenario == "latency" else "error_rate"
            )
            # Every trace ID the report names resolves in v2's exported spans.
            ids = trace_ids(report, CANDIDATE_VERSION)
            assert ids
            for trace_id in ids:
                spans = find_trace([stack.files.spans[CANDIDATE_VERSION]], trace_id)
                assert "model.infer" in {s.name for s in spans}
        else:
            latency = next(
                c for c in report["judgement"]["comparisons"] if c["metric"] == "latency_p95"
            )
            assert latency["interval"] is not None  # the promotion states the change
            # A typical trace of each version, found in its own server's spans.
            typical = [e for e in report["evidence"] if e["kind"] == "typical"]
            assert {e["version"] for e in typical} == {"v1", "v2"}
            for item in typical:
                assert find_trace([stack.files.spans[item["version"]]], item["trace_id"])


def test_demo_rolls_back_a_slow_v2_with_evidence_and_leaves_no_process(tmp_path: Path) -> None:
    # As a person types it: a report dir relative to where they stand.
    done = rollout("demo", "--scenario", "latency", "--report-dir", "D", cwd=tmp_path)
    reports = tmp_path / "D"
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ROLLED BACK" in done.stdout

    report = json.loads((reports / "report.json").read_text())
    ids = trace_ids(report, CANDIDATE_VERSION)
    assert ids
    spans_file = reports / "stack" / f"spans-{CANDIDATE_VERSION}.jsonl"
    for trace_id in ids:
        assert find_trace([spans_file], trace_id), trace_id
    markdown = (reports / "report.md").read_text()
    assert ids[0] in markdown

    pids = json.loads((reports / "stack" / "pids.json").read_text())
    assert set(pids) == {"server-v1", "server-v2", "haproxy", "prometheus"}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the demo's own children, stopped and reaped
