"""`rollout run` as a user runs it, on the real local stack, with all its telemetry on: JSON
logs on stdout, spans exported over OTLP/HTTP through the standard environment variables to
a local receiver, /metrics scraped by a real Prometheus, and a webhook notified."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from rollout.demo.launcher import BASELINE_VERSION, CANDIDATE_VERSION, MODEL, DemoStack
from rollout.demo.procs import free_port
from rollout.demo.prom import start_prometheus
from tests.support.cli_faults import FAST_POLICY, ROOT
from tests.support.otlp import OtlpReceiver
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_run_logs_json_exports_its_ticks_serves_metrics_and_notifies(tmp_path: Path) -> None:
    port = free_port()
    with (
        DemoStack(tmp_path / "stack", "healthy", 60.0, seed=5).start() as stack,
        start_prometheus(tmp_path / "scraper", {"rollout": [f"127.0.0.1:{port}"]}) as scraper,
        OtlpReceiver() as otlp,
        Receiver() as hook,
    ):
        (tmp_path / "policy.yaml").write_text(yaml.safe_dump(FAST_POLICY))
        document = stack.spec_document(policy=str(tmp_path / "policy.yaml"), name="telemetry")
        document["spec"]["notifications"] = {"webhooks": [{"url": hook.url}]}
        (tmp_path / "rollout.yaml").write_text(yaml.safe_dump(document))
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_SERVICE_NAME": "rollout-e2e",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        done = subprocess.run(
            [
                sys.executable, "-m", "rollout.cli", "run", str(tmp_path / "rollout.yaml"),
                "--state-dir", str(tmp_path / "state"), "--log-format", "json",
                "--metrics-port", str(port),
            ],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

        # Logs: every stdout line is one JSON object; the person's summary is on stderr.
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert "telemetry: Promoted" in done.stderr
        looks = [line for line in lines if line["message"].startswith("look ")]
        assert looks and all(line["trace_id"] for line in looks)
        decided = [line for line in lines if line.get("decision") == "promoted"]
        (promoted,) = [line for line in decided if line["message"].startswith("promoted: ")]
        assert promoted["rollout"] == "telemetry" and promoted["model"] == MODEL
        assert promoted["versions"] == {
            "baseline": BASELINE_VERSION,
            "candidate": CANDIDATE_VERSION,
        }
        assert promoted["step"] == 3 and promoted["level"] == "info"
        steps = [line["weights"]["candidate"] for line in lines if line.get("decision") == "step"]
        assert steps == [20, 50]

        # Spans: a tick per reconcile, the queries, the judge and the router under it; the
        # log lines' trace IDs are the ticks'.
        otlp.wait_for("rollout.tick")
        ticks = {s.span_id: s for s in otlp.spans if s.name == "rollout.tick"}
        assert {s.service for s in otlp.spans} == {"rollout-e2e"}
        assert all(
            t.parent_id == "" and t.attributes["model_name"] == MODEL for t in ticks.values()
        )
        children = {s.name for s in otlp.spans if s.parent_id in ticks}
        assert {
            "rollout.query",
            "rollout.judge",
            "rollout.router.set_weights",
            "rollout.router.get_weights",
        } <= children
        assert {line["trace_id"] for line in looks} <= {t.trace_id for t in ticks.values()}

        # Metrics: Prometheus scraped the run's /metrics while it ran.
        answer = httpx.get(
            f"{scraper.url}/api/v1/query",
            params={
                "query": f'max_over_time(rollout_weight{{model_name="{MODEL}", '
                f'model_version="{CANDIDATE_VERSION}"}}[10m])'
            },
            timeout=10,
        ).json()["data"]["result"]
        assert answer and float(answer[0]["value"][1]) >= 20

        # Notifications: both steps and the promotion.
        assert [r.json()["event"] for r in hook.received] == ["step", "step", "promoted"]
