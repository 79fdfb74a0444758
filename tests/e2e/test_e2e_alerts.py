"""Alerts that stop a rollout, end to end: the demo's errors scenario (v2 failing 30% of its
requests), a real Prometheus evaluating the shipped SLO rules, a real Alertmanager routing with
the README's configuration, and `rollout run --alert-webhook-port` as a user runs it.

The shipped rules wait minutes (`for: 5m` on 5-minute windows); the test runs a copy with every
`for:` and range rewritten to seconds, so the expressions, labels and routing are the shipped
ones. The policy's judge cannot decide first: its first look is an hour away, and the step holds
an hour. So what stops the rollout is the alert, and the report must say so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rollout.demo.launcher import BASELINE_VERSION, CANDIDATE_VERSION, MODEL, DemoStack
from rollout.demo.load import LoadResult, run_load
from rollout.demo.procs import free_port
from rollout.demo.prom import RunningPrometheus
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.routers.haproxy import HAProxyRouter
from tests.support.alertmanager import readme_config, start_alertmanager

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "prometheus" / "rules.yaml"
TOKEN = "e2e-alert-webhook-token-5f1c"
ERROR_RATE = 0.30  # six times the alert's 5% threshold
RPS = 40.0
STEP = Weights.candidate_share(50)
DONE_TIMEOUT = 300.0  # the alert takes ~15 s after the rules load; a busy machine, far longer
BOGUS = "BogusAlertThatMustNotAct"


def fast_rules(workdir: Path) -> Path:
    """The shipped rules with `for:` 10s and every range 30s (Prometheus evaluates each 1s)."""
    text = RULES.read_text(encoding="utf-8")
    text, fors = re.subn(r"for: \d+[smh]", "for: 10s", text)
    text, ranges = re.subn(r"\[\d+[smh]\]", "[30s]", text)
    assert fors >= 3 and ranges >= 10, "the shipped rules changed shape: update this rewrite"
    path = workdir / "rules-fast.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def critical_alerts() -> set[str]:
    """The shipped alerts the README's route sends to the webhook (severity critical)."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {
        rule["alert"]
        for group in groups
        for rule in group["rules"]
        if rule.get("labels", {}).get("severity") == "critical"
    }


def configure_prometheus(
    prometheus: RunningPrometheus, alertmanager_url: str, rules: Path | None
) -> None:
    config = yaml.safe_load(prometheus.config_path.read_text(encoding="utf-8"))
    target = alertmanager_url.removeprefix("http://")
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    config["rule_files"] = [str(rules)] if rules is not None else []
    prometheus.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    answer = httpx.post(f"{prometheus.url}/-/reload", timeout=30)
    assert answer.status_code == 200, answer.text


def alertmanager_config(webhook_port: int, token_file: Path) -> dict[str, Any]:
    """The README's configuration, pointed at this test's webhook, grouping within a second."""
    config = readme_config()
    (route,) = config["route"]["routes"]
    route |= {"group_wait": "1s", "group_interval": "1s"}
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    (webhook,) = receiver["webhook_configs"]
    webhook["url"] = f"http://127.0.0.1:{webhook_port}/alerts"
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


def spec(stack: DemoStack, path: Path, action: str) -> Path:
    document = stack.spec_document(name=f"alerts-{action}")
    document["spec"]["policy"] = {
        "name": "held-for-an-hour",
        "steps": [{"weight": STEP.candidate, "hold": "1h"}],
        "analysis": {"interval": "1h"},  # the first look: half an hour away at least
        "minRequests": 100_000,
        "alerts": {"action": action},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def post(url: str, alerts: list[dict[str, Any]], token: str | None = TOKEN) -> httpx.Response:
    body = {"version": "4", "status": "firing", "receiver": "rollout", "alerts": alerts}
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(url, json=body, headers=headers, timeout=30)


def bogus(
    version: str = CANDIDATE_VERSION, model: str = MODEL, status: str = "firing"
) -> dict[str, Any]:
    labels = {"alertname": BOGUS, "model_name": model, "model_version": version}
    return {"status": status, "labels": labels, "startsAt": "2024-05-01T10:00:00Z"}


def wait_for_webhook(url: str, process: subprocess.Popen[str], log: Path) -> None:
    """Until the webhook answers (401 to a request without credentials), bounded."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"rollout run exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.post(url, content=b"{}", timeout=2).status_code == 401:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the webhook never answered:\n{log.read_text()}")


def send_bad_input(url: str) -> None:
    """What must change nothing, sent before the rules exist (so before any real alert): had
    any of it reached the rollout, the report would name BOGUS."""
    assert post(url, [bogus()], token=None).status_code == 401
    assert post(url, [bogus()], token="not-the-token").status_code == 401
    oversized = {"version": "4", "alerts": [bogus()], "padding": "x" * (1024 * 1024)}
    too_big = httpx.post(url, json=oversized, headers={"Authorization": f"Bearer {TOKEN}"})
    assert too_big.status_code == 413
    malformed = httpx.post(url, content=b'{"version": "4", "alerts": [{"status": 1}]}',
                           headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert malformed.status_code == 400 and "alerts[0].status" in malformed.text
    for other in (
        bogus(model="another-model"),
        bogus(version=BASELINE_VERSION),
        bogus(version="v3"),
        bogus(status="resolved"),
    ):
        answer = post(url, [other])
        assert answer.status_code == 200 and answer.json()["delivered"] == 0, answer.text


def served_by(stack: DemoStack, requests: int = 80) -> LoadResult:
    """Who answers through HAProxy. The stack's own load stops first: roundrobin alternates
    over every request, so two streams at one rate could each see a single server."""
    assert stack.haproxy is not None and stack.load is not None
    stack.load.stop()
    return run_load(f"{stack.haproxy.url}/predict", 40.0, 10.0, max_requests=requests)


def rollout_run(
    tmp_path: Path, spec_path: Path, port: int, token_file: Path
) -> subprocess.Popen[str]:
    """`rollout run` with the webhook, as a user types it; its output in tmp_path/run.log."""
    argv = [
        sys.executable, "-m", "rollout.cli", "run", str(spec_path),
        "--state-dir", str(tmp_path / "state"), "--report-dir", str(tmp_path / "reports"),
        "--alert-webhook-port", str(port), "--alert-webhook-token-file", str(token_file),
    ]  # fmt: skip
    with (tmp_path / "run.log").open("w") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )


def stop(run: subprocess.Popen[str]) -> None:
    if run.poll() is None:
        run.terminate()  # by the pid we started
        run.wait(timeout=60)


@pytest.mark.parametrize(("action", "exit_code"), [("pause", 2), ("rollback", 1)])
def test_a_firing_slo_alert_on_the_candidate_stops_the_rollout_and_the_report_names_it(
    tmp_path: Path, action: str, exit_code: int
) -> None:
    token_file = tmp_path / "webhook-token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/alerts"
    stack = DemoStack(tmp_path / "stack", "errors", RPS, seed=5, candidate_error_rate=ERROR_RATE)
    with stack.start(), contextlib.ExitStack() as running:
        assert stack.prometheus is not None and stack.haproxy is not None
        alertmanager = start_alertmanager(
            tmp_path / "alertmanager", alertmanager_config(port, token_file)
        )
        running.callback(alertmanager.stop)
        configure_prometheus(stack.prometheus, alertmanager.url, rules=None)
        run = rollout_run(
            tmp_path, spec(stack, tmp_path / "rollout.yaml", action), port, token_file
        )
        running.callback(stop, run)
        wait_for_webhook(webhook, run, tmp_path / "run.log")
        send_bad_input(webhook)
        # From now on the candidate's errors can fire the shipped alerts.
        configure_prometheus(stack.prometheus, alertmanager.url, fast_rules(tmp_path))
        try:
            code = run.wait(timeout=DONE_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"no decision in {DONE_TIMEOUT:.0f}s; Alertmanager holds {alertmanager.alerts()}"
                f"\n{(tmp_path / 'run.log').read_text()}"
            )
        output = (tmp_path / "run.log").read_text()
        assert code == exit_code, output

        report = json.loads((tmp_path / "reports" / "report.json").read_text())
        assert report["decision"] == {"pause": "paused", "rollback": "rolled_back"}[action]
        name = report["reason"].removeprefix("alert ").split(" ")[0]
        assert name in critical_alerts(), report["reason"]
        assert report["reason"].startswith(f"alert {name} fired on the candidate v2 (since ")
        assert f"{MODEL} v2" in report["reason"]  # the alert's summary annotation
        assert report["observations"] == []  # the judge never looked: the alert decided
        fired = [note for note in report["notes"] if " fired: " in note]
        assert len(fired) == 1 and f'model_version="{CANDIDATE_VERSION}"' in fired[0], fired
        assert BOGUS not in json.dumps(report) and BOGUS not in output
        assert f"alert webhook: {webhook}" in output

        router = HAProxyRouter(stack.haproxy.router_config())
        served = served_by(stack)
        if action == "pause":  # traffic held where it was, both versions answering
            assert router.get_weights() == STEP
            shares = [served.by_version.get(v, 0) for v in (BASELINE_VERSION, CANDIDATE_VERSION)]
            assert min(shares) >= 20, served  # about 40 each
        else:
            assert router.get_weights() == ALL_BASELINE
            assert served.by_version == {BASELINE_VERSION: 80}, served

    written = [output, *(p.read_text() for p in (tmp_path / "reports").glob("report.*"))]
    written += [p.read_text() for p in (tmp_path / "state").glob("*.json")]
    assert all(TOKEN not in text for text in written)
