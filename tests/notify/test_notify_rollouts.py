"""Notifications of whole rollouts on the driver's bench (a real HAProxy, a real Prometheus
on backfilled data, the replay clock), received by real HTTP receivers: what arrives, in
which order, signed; and a receiver that is down, answers 500 or holds every request never
changes or delays a decision, nor the rollback's move of traffic."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from rollout.demo.procs import free_port
from rollout.driver import abort_from_spec, run_from_spec
from rollout.exit_codes import ExitCode
from rollout.notify.payloads import SIGNATURE_HEADER
from rollout.routers.base import ALL_BASELINE
from rollout.spec import RolloutSpec
from rollout.state import LocalFileStore, Phase, RolloutState
from tests.support.backfill import BackfilledPrometheus
from tests.support.receiver import Receiver
from tests.support.replay import POLICY, ReplayClock, Stack, answered_by, make_spec
from tests.support.scenarios import BASELINE

SECRET = "whsec-93ab-never-print-me"
SLACK_TOKEN = "T000/B000/slack-token-never-print-me"


def spec_with(base: RolloutSpec, notifications: dict[str, Any]) -> RolloutSpec:
    document = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["spec"]["notifications"] = notifications
    return RolloutSpec.model_validate(document)


def notifications(tmp_path: Path, webhook: str, slack: str | None = None) -> dict[str, Any]:
    (tmp_path / "hmac").write_text(SECRET + "\n")
    config: dict[str, Any] = {
        "webhooks": [{"url": webhook, "secretFile": str(tmp_path / "hmac"), "timeout": "2s"}],
        "attempts": 3,
    }
    if slack is not None:
        (tmp_path / "slack-url").write_text(f"{slack}/services/{SLACK_TOKEN}\n")
        config["slack"] = [{"urlFile": str(tmp_path / "slack-url")}]
    return config


def run(
    model: str,
    stack: Stack,
    prometheus: BackfilledPrometheus,
    tmp_path: Path,
    config: dict[str, Any],
) -> tuple[ExitCode, RolloutState, str]:
    console = tmp_path / "console.txt"
    code = run_from_spec(
        spec_with(make_spec(model, stack.haproxy, prometheus.url), config),
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=tmp_path / "report",
        console=Console(file=console.open("a"), width=200),
        clock=ReplayClock(prometheus.dataset.start + 120),
    )
    state = LocalFileStore(tmp_path / "state" / f"default-{model}.json").load()
    assert state is not None
    return code, state, console.read_text()


def test_a_promotion_is_announced_step_by_step_signed_and_on_slack(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    with Receiver() as hook, Receiver() as slack:
        config = notifications(tmp_path, hook.url, slack.url.removesuffix("/hook"))
        code, state, _ = run("gate-same", stack, synthetic_prometheus, tmp_path, config)
    assert code is ExitCode.PROMOTED
    documents = [r.json() for r in hook.received]
    assert [(d["event"], d["step"], d["weights"]["candidate"]) for d in documents] == [
        ("step", 1, 20),
        ("step", 2, 50),
        ("promoted", 3, 100),
    ]
    promoted = documents[-1]
    assert promoted["weights_confirmed"] is True and promoted["model"] == "gate-same"
    assert promoted["report"] and all(p.startswith(str(tmp_path)) for p in promoted["report"])
    for received in hook.received:
        mac = hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert received.headers[SIGNATURE_HEADER] == f"sha256={mac}"
    # Slack: one message per notice, at the path the URL file names.
    assert [r.path for r in slack.received] == [f"/services/{SLACK_TOKEN}"] * 3
    texts = [r.json()["text"] for r in slack.received]
    assert "step 1/2" in texts[0] and "promoted" in texts[2] and "0/100" in texts[2]
    assert state.phase is Phase.PROMOTED


def test_a_rollback_is_announced_with_traffic_back_on_the_baseline(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    with Receiver() as hook:
        config = notifications(tmp_path, hook.url)
        code, _, _ = run("gate-errors", stack, synthetic_prometheus, tmp_path, config)
    assert code is ExitCode.ROLLED_BACK
    events = [r.json() for r in hook.received]
    assert [e["event"] for e in events] == ["step", "rolled_back"]
    rolled_back = events[-1]
    assert rolled_back["weights"] == {"baseline": 100, "candidate": 0}
    assert rolled_back["weights_confirmed"] is True
    assert "error" in rolled_back["reason"].lower()


def test_a_pause_and_a_persons_abort_are_announced(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    with Receiver() as hook:
        config = notifications(tmp_path, hook.url)
        code, _, _ = run("gate-nocandidate", stack, synthetic_prometheus, tmp_path, config)
        assert code is ExitCode.PAUSED
        code = abort_from_spec(
            spec_with(
                make_spec("gate-nocandidate", stack.haproxy, synthetic_prometheus.url), config
            ),
            POLICY,
            reason="operator: v2 needs more work",
            state_dir=tmp_path / "state",
            report_dir=None,
            console=Console(file=(tmp_path / "abort.txt").open("a"), width=200),
        )
    assert code is ExitCode.PROMOTED  # 0: the abort is done
    events = [r.json() for r in hook.received]
    assert [e["event"] for e in events] == ["step", "paused", "aborted"]
    assert events[-1]["reason"] == "operator: v2 needs more work"
    assert events[-1]["weights"]["baseline"] == 100


@pytest.mark.parametrize("receiver", ["down", "500"])
def test_a_failing_receiver_changes_no_decision_and_is_logged_without_secrets(
    stack: Stack,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    receiver: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="rollout.notify")
    with Receiver(answer=lambda n: 500) as failing:
        url = failing.url if receiver == "500" else f"http://127.0.0.1:{free_port()}/hook"
        config = notifications(tmp_path, url, slack=url.removesuffix("/hook"))
        code, state, console = run("gate-errors", stack, synthetic_prometheus, tmp_path, config)
    assert code is ExitCode.ROLLED_BACK and state.phase is Phase.ROLLED_BACK
    assert state.weight_changes[-1].weights == ALL_BASELINE
    assert answered_by(stack.haproxy) == Counter({BASELINE: 40})
    # Both notices to both destinations: each one logged as failed, naming no secret.
    failures = [r.getMessage() for r in caplog.records if "failed after 3" in r.getMessage()]
    assert len(failures) == 4, caplog.text
    report = (tmp_path / "report" / "report.json").read_text()
    for text in (caplog.text, console, report):
        assert SECRET not in text and SLACK_TOKEN not in text


def test_a_receiver_holding_every_request_does_not_hold_up_the_rollback(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    """The first notice (step 1) is held by the receiver for as long as the test wants:
    the rollout still rolls back, and the router's read-back confirms the baseline, while
    not one notification has been answered. A watcher thread looks at the state file and
    HAProxy during the run, then lets the receiver answer."""
    hold = threading.Event()
    seen: dict[str, object] = {}
    state_file = LocalFileStore(tmp_path / "state" / "default-gate-errors.json")

    def watch() -> None:
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                state = state_file.load() if state_file.path.exists() else None
                if state is not None and state.phase is Phase.ROLLED_BACK and state.confirmed:
                    seen["answered"] = hook.answered
                    seen["received"] = len(hook.received)
                    seen["serving"] = answered_by(stack.haproxy)
                    return
                time.sleep(0.1)
        finally:
            hold.set()

    with Receiver(hold=hold) as hook:
        config = notifications(tmp_path, hook.url)
        config["webhooks"][0]["timeout"] = "60s"  # one attempt outlasts the whole rollout
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            code, _, _ = run("gate-errors", stack, synthetic_prometheus, tmp_path, config)
        finally:
            watcher.join(timeout=130)
    assert code is ExitCode.ROLLED_BACK
    assert seen, "the rollback was not confirmed while the receiver held the first notice"
    assert seen["answered"] == 0 and seen["received"] == 1  # the step notice, still held
    assert seen["serving"] == Counter({BASELINE: 40})
    assert [r.json()["event"] for r in hook.received] == ["step", "rolled_back"]
