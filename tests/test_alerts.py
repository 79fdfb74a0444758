"""The alert webhook: Alertmanager's payload checked field by field, firing alerts matched to
rollouts by their labels and delivered once, and the real HTTP receiver on a loopback port
refusing whatever is not an authenticated notification without delivering anything."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from rollout.alerts import (
    MAX_BODY_BYTES,
    Alert,
    AlertReceiver,
    Dispatcher,
    PayloadError,
    SecretFileError,
    WebhookSecret,
    parse_notification,
    read_secret,
)
from rollout.cli import app
from rollout.driver import policy_digest
from rollout.spec import AlertAction, AlertRule, load_policy

SECRET = "t0ps3cret-webhook-token"
STARTS = "2024-05-01T10:00:00.123456789Z"  # Alertmanager writes nanoseconds


def alert(
    name: str = "HighErrorRateFastBurn",
    model: str = "fraud-detector",
    version: str = "v2",
    status: str = "firing",
    starts_at: str = STARTS,
    fingerprint: str = "4f2ad5c0e6a1b9d3",
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 puts it in a webhook notification."""
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "model_name": model,
            "model_version": version,
            "severity": "critical",
        },
        "annotations": {"summary": f"{model} {version}: error rate above 5%"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph?g0.expr=...",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "receiver": "rollout",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {"alertname": "HighErrorRateFastBurn"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRateFastBurn"}',
        "truncatedAlerts": 0,
    }


# ---------------------------------------------------------------------------- the payload


def test_a_notification_becomes_alerts_with_their_labels_start_and_fingerprint() -> None:
    body = json.dumps(notification(alert(), alert(status="resolved", fingerprint="b"))).encode()
    first, second = parse_notification(body)
    assert first.name == "HighErrorRateFastBurn" and first.firing and not second.firing
    assert first.label("model_version") == "v2" and first.label("nope") is None
    assert first.starts_at == pytest.approx(1714557600.123456)
    assert first.fingerprint == "4f2ad5c0e6a1b9d3"
    assert first.summary == "fraud-detector v2: error rate above 5%"
    event = first.fired()
    assert event.key == "4f2ad5c0e6a1b9d3@1714557600"
    assert ("severity", "critical") in event.labels


def test_an_alert_without_a_fingerprint_gets_one_from_its_labels() -> None:
    bare = {k: v for k, v in alert().items() if k != "fingerprint"}
    (one,) = parse_notification(json.dumps(notification(bare)).encode())
    (same,) = parse_notification(json.dumps(notification(dict(bare))).encode())
    other = {**bare, "labels": {**bare["labels"], "model_version": "v3"}}
    (different,) = parse_notification(json.dumps(notification(other)).encode())
    assert one.fingerprint == same.fingerprint != different.fingerprint


def test_long_texts_are_clipped_before_they_reach_the_rollouts_state() -> None:
    long = alert()
    long["annotations"]["summary"] = "x" * 5000
    (parsed,) = parse_notification(json.dumps(notification(long)).encode())
    assert len(parsed.fired().summary) == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "(body): not JSON"),
        (b"\xff\xfe", "(body): not JSON"),
        (b"[1, 2]", "(body): expected a JSON object"),
        (json.dumps({**notification(alert()), "version": "3"}).encode(), 'version: expected "4"'),
        (json.dumps({"version": "4", "alerts": {"a": 1}}).encode(), "alerts: expected a list"),
        (json.dumps(notification(alert(), 7)).encode(), "alerts[1]: expected an object"),
        (json.dumps(notification(alert(status="maybe"))).encode(), "alerts[0].status"),
        (
            json.dumps(notification({**alert(), "labels": {"model_version": 2}})).encode(),
            "alerts[0].labels.model_version: expected a string",
        ),
        (
            json.dumps(notification({**alert(), "labels": None})).encode(),
            "alerts[0].labels: expected an object",
        ),
        (json.dumps(notification(alert(starts_at="yesterday"))).encode(), "alerts[0].startsAt"),
        (
            json.dumps(notification(alert(starts_at="2024-05-01T10:00:00"))).encode(),
            "alerts[0].startsAt: expected a time with its offset",
        ),
        (
            json.dumps(notification({**alert(), "fingerprint": 5})).encode(),
            "alerts[0].fingerprint",
        ),
        (b"[" * 100_000, "(body): not JSON"),  # nesting too deep for the parser
    ],
)
def test_a_malformed_notification_is_refused_naming_the_field(body: bytes, named: str) -> None:
    with pytest.raises(PayloadError) as refused:
        parse_notification(body)
    assert str(refused.value).startswith(named), str(refused.value)


# ---------------------------------------------------------------------------- dispatch


@dataclass
class Rollouts:
    """Rollouts by (model, candidate): what a driver or the controller would take."""

    candidates: set[tuple[str, str]] = field(default_factory=lambda: {("fraud-detector", "v2")})
    taken: list[tuple[str, str, Alert]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, model: str, version: str, alert: Alert) -> bool:
        if (model, version) not in self.candidates:
            return False
        with self.lock:
            self.taken.append((model, version, alert))
        return True


def parsed(*alerts: dict[str, Any]) -> tuple[Alert, ...]:
    return parse_notification(json.dumps(notification(*alerts)).encode())


def test_only_firing_alerts_naming_a_rollouts_model_and_candidate_are_delivered() -> None:
    rollouts = Rollouts()
    done = Dispatcher(rollouts.deliver).dispatch(
        parsed(
            alert(model="churn", fingerprint="a"),
            alert(version="v1", fingerprint="b"),  # the baseline
            alert(status="resolved", fingerprint="c"),
            {**alert(fingerprint="d"), "labels": {"alertname": "NodeDown"}},  # no model labels
            alert(fingerprint="e"),
        )
    )
    assert [a.fingerprint for _, _, a in rollouts.taken] == ["e"]
    assert (done.received, done.firing, done.delivered, done.repeated) == (5, 3, 1, 0)


def test_a_flood_of_repeats_is_delivered_once_and_a_new_firing_again() -> None:
    rollouts = Rollouts()
    dispatcher = Dispatcher(rollouts.deliver)
    for _ in range(100):
        dispatcher.dispatch(parsed(alert(), alert()))
    assert len(rollouts.taken) == 1
    dispatcher.dispatch(parsed(alert(starts_at="2024-05-01T11:00:00Z")))  # resolved, fired again
    assert len(rollouts.taken) == 2


def test_an_alert_no_rollout_took_is_delivered_when_one_appears() -> None:
    rollouts = Rollouts(candidates=set())
    dispatcher = Dispatcher(rollouts.deliver)
    dispatcher.dispatch(parsed(alert()))
    rollouts.candidates.add(("fraud-detector", "v2"))
    dispatcher.dispatch(parsed(alert()))
    assert len(rollouts.taken) == 1


def test_the_firings_remembered_are_bounded() -> None:
    rollouts = Rollouts()
    dispatcher = Dispatcher(rollouts.deliver, remember=10)
    for i in range(30):
        dispatcher.dispatch(parsed(alert(fingerprint=f"f{i}")))
    dispatcher.dispatch(parsed(alert(fingerprint="f0")))  # forgotten: delivered again
    dispatcher.dispatch(parsed(alert(fingerprint="f29")))  # remembered: not again
    assert len(rollouts.taken) == 31


def test_labels_named_otherwise_are_read_by_their_names() -> None:
    rollouts = Rollouts()
    other = alert()
    other["labels"] = {"alertname": "X", "model": "fraud-detector", "version": "v2"}
    Dispatcher(rollouts.deliver, model_label="model", version_label="version").dispatch(
        parsed(other)
    )
    assert len(rollouts.taken) == 1


# ---------------------------------------------------------------------------- the secret


def test_the_secret_is_read_trimmed_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {SECRET}\n")
    secret = read_secret(path)
    assert SECRET not in repr(secret) and SECRET not in str(secret)
    assert secret.bearer_matches(f"Bearer {SECRET}") and secret.bearer_matches(f"bearer {SECRET}")
    assert not secret.bearer_matches(f"Basic {SECRET}")
    assert not secret.bearer_matches(f"Bearer {SECRET}x")


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot read it"), (b" \n", "empty"), (SECRET.encode() * 1000, "over 4096 bytes")],
)
def test_an_unusable_token_file_is_refused_naming_the_file_not_its_content(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SecretFileError) as refused:
        read_secret(path)
    assert str(path) in str(refused.value) and says in str(refused.value)
    assert SECRET not in str(refused.value)


# ---------------------------------------------------------------------------- the HTTP receiver


@pytest.fixture
def rollouts() -> Rollouts:
    return Rollouts()


@pytest.fixture
def receiver(rollouts: Rollouts) -> Iterator[AlertReceiver]:
    """A real receiver on a free 127.0.0.1 port (chosen by the kernel), stopped at the end."""
    with AlertReceiver(WebhookSecret(SECRET.encode()), rollouts.deliver).start() as running:
        yield running


def post(
    receiver: AlertReceiver, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(receiver.url, content=body, headers=headers or {}, timeout=30)


def bearer(token: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def signed(body: bytes, key: str = SECRET) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}"}


GOOD = json.dumps(notification(alert())).encode()


def test_it_listens_on_loopback_and_a_bearer_or_a_signature_delivers(
    receiver: AlertReceiver, rollouts: Rollouts
) -> None:
    assert receiver.url.startswith("http://127.0.0.1:") and receiver.url.endswith("/alerts")
    answer = post(receiver, GOOD, bearer())
    assert answer.status_code == 200
    assert answer.json() == {"received": 1, "firing": 1, "delivered": 1, "repeated": 0}
    other = json.dumps(notification(alert(fingerprint="other"))).encode()
    assert post(receiver, other, signed(other)).status_code == 200
    assert [a.fingerprint for _, _, a in rollouts.taken] == ["4f2ad5c0e6a1b9d3", "other"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(SECRET[:-1]),
        {"Authorization": SECRET},  # no scheme
        {"Authorization": f"Basic {SECRET}"},
        signed(GOOD, key="wrong"),
        {"X-Signature": "sha256=zz"},
        {**bearer("wrong"), **signed(GOOD, key="wrong")},
    ],
    ids=[
        "none",
        "wrong-token",
        "prefix",
        "no-scheme",
        "basic",
        "wrong-key",
        "garbage-signature",
        "both-wrong",
    ],
)
def test_a_request_without_valid_credentials_gets_401_and_delivers_nothing(
    receiver: AlertReceiver, rollouts: Rollouts, headers: dict[str, str]
) -> None:
    answer = post(receiver, GOOD, headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert rollouts.taken == []


def test_a_signature_of_another_body_is_refused(
    receiver: AlertReceiver, rollouts: Rollouts
) -> None:
    tampered = json.dumps(notification(alert(version="v1"))).encode()
    assert post(receiver, tampered, signed(GOOD)).status_code == 401
    assert rollouts.taken == []


def test_an_oversized_body_gets_413_and_delivers_nothing(
    receiver: AlertReceiver, rollouts: Rollouts
) -> None:
    padding = " " * (MAX_BODY_BYTES + 1 - len(GOOD))
    oversized = GOOD + padding.encode()  # valid JSON, one byte over the limit
    answer = post(receiver, oversized, bearer())
    assert answer.status_code == 413 and "over the limit" in answer.json()["error"]
    assert post(receiver, oversized, signed(oversized)).status_code == 413
    # Without credentials, the answer is 401 whatever the size.
    assert post(receiver, oversized).status_code == 401
    assert rollouts.taken == []
    assert post(receiver, GOOD + b" " * 1000, bearer()).status_code == 200  # under: taken


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{", "(body): not JSON"),
        (b'{"version": "4"}', "alerts: expected a list"),
        (json.dumps(notification(alert(starts_at="soon"))).encode(), "alerts[0].startsAt"),
    ],
)
def test_a_malformed_payload_gets_400_naming_the_field_and_delivers_nothing(
    receiver: AlertReceiver, rollouts: Rollouts, body: bytes, named: str
) -> None:
    answer = post(receiver, body, bearer())
    assert answer.status_code == 400 and answer.json()["error"].startswith(named)
    assert rollouts.taken == []


def test_a_body_without_a_length_or_to_another_path_is_refused(
    receiver: AlertReceiver, rollouts: Rollouts
) -> None:
    host, port = receiver.url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/alerts", body=iter([GOOD]), headers=bearer())  # chunked
    assert connection.getresponse().status == 411
    connection.close()
    for path in ("/", "/alerts/x"):
        wrong = httpx.post(receiver.url.replace("/alerts", path), content=GOOD, headers=bearer())
        assert wrong.status_code == 404 and "/alerts" in wrong.json()["error"]
    assert httpx.get(receiver.url).status_code == 501  # only POST
    assert rollouts.taken == []


def test_other_rollouts_alerts_and_resolved_ones_are_answered_and_deliver_nothing(
    receiver: AlertReceiver, rollouts: Rollouts
) -> None:
    for other in (alert(model="churn"), alert(version="v1"), alert(status="resolved")):
        answer = post(receiver, json.dumps(notification(other)).encode(), bearer())
        assert answer.status_code == 200 and answer.json()["delivered"] == 0
    assert rollouts.taken == []


def test_a_flood_of_the_same_notification_at_once_delivers_it_once(
    receiver: AlertReceiver, rollouts: Rollouts
) -> None:
    answers: list[int] = []

    def send() -> None:
        answers.append(post(receiver, GOOD, bearer()).status_code)

    senders = [threading.Thread(target=send) for _ in range(40)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    assert answers == [200] * 40
    assert len(rollouts.taken) == 1


def test_the_secret_never_appears_in_answers_or_logs(
    receiver: AlertReceiver, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = [
        post(receiver, GOOD, bearer(SECRET + "x")).text,
        post(receiver, b"{", bearer()).text,
        post(receiver, GOOD, bearer()).text,
        post(receiver, GOOD, signed(GOOD, key=SECRET[::-1])).text,
    ]
    captured = capfd.readouterr()
    for text in (*texts, caplog.text, captured.out, captured.err):
        assert SECRET not in text and SECRET[::-1] not in text


def test_a_deliver_that_fails_is_a_500_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(model: str, version: str, alert: Alert) -> bool:
        raise RuntimeError("the rollout's store is gone")

    with AlertReceiver(WebhookSecret(SECRET.encode()), broken).start() as running:
        answer = post(running, GOOD, bearer())
    assert answer.status_code == 500 and "store" not in answer.text
    assert "could not deliver" in caplog.text


def test_a_client_that_hangs_up_mid_body_is_dropped_quietly_and_the_receiver_serves_on(
    receiver: AlertReceiver, rollouts: Rollouts, capfd: pytest.CaptureFixture[str]
) -> None:
    host, port = receiver.url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as stalled:
        head = f"POST /alerts HTTP/1.1\r\nAuthorization: Bearer {SECRET}\r\n"
        stalled.sendall(f"{head}Content-Length: {len(GOOD)}\r\n\r\n".encode() + GOOD[:10])
        assert post(receiver, GOOD, bearer()).status_code == 200  # served meanwhile
        stalled.shutdown(socket.SHUT_WR)  # the rest never comes
        assert stalled.recv(4096).startswith(b"HTTP/1.0 400")
    with socket.create_connection((host, int(port)), timeout=60) as reset:
        reset.sendall(f"{head}Content-Length: {len(GOOD)}\r\n\r\n".encode() + GOOD[:10])
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert post(receiver, GOOD, bearer()).status_code == 200  # still serving
    assert len(rollouts.taken) == 1
    assert "Traceback" not in capfd.readouterr().err


def test_a_taken_port_is_an_os_error_at_construction() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            AlertReceiver(WebhookSecret(b"s"), Rollouts().deliver, port=port)


# ---------------------------------------------------------------------------- rollout run options


SPEC = """\
kind: ModelRollout
metadata: {name: fraud}
spec:
  model: fraud-detector
  baseline: {version: v1}
  candidate: {version: v2}
  router: {kind: haproxy, adminSocket: '127.0.0.1:9', backend: fraud, baselineServer: v1,
           candidateServer: v2}
  prometheus: {url: 'http://127.0.0.1:9'}
"""


def run_cli(tmp_path: Path, *options: str) -> Any:
    spec = tmp_path / "rollout.yaml"
    spec.write_text(SPEC)
    state = tmp_path / "state"
    return CliRunner().invoke(app, ["run", str(spec), "--state-dir", str(state), *options])


def test_what_an_alert_does_may_change_between_runs_of_a_saved_rollout() -> None:
    policy = load_policy("default")
    rollback = policy.model_copy(update={"alerts": AlertRule(action=AlertAction.ROLLBACK)})
    assert policy_digest(rollback) == policy_digest(policy)  # and digests saved before stand
    stricter = policy.model_copy(update={"min_requests": policy.min_requests + 1})
    assert policy_digest(stricter) != policy_digest(policy)


def test_a_webhook_port_without_a_token_file_is_refused_naming_the_flag(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--alert-webhook-port", "9")
    assert result.exit_code == 3
    assert "--alert-webhook-token-file" in result.output
    assert not (tmp_path / "state").exists()  # nothing started


def test_a_token_file_without_a_port_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET)
    result = run_cli(tmp_path, "--alert-webhook-token-file", str(tmp_path / "token"))
    assert result.exit_code == 3 and "--alert-webhook-port" in result.output


def test_an_empty_or_missing_token_file_is_refused_naming_the_flag_and_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "token").write_text("\n")
    for path in (tmp_path / "token", tmp_path / "missing"):
        result = run_cli(
            tmp_path, "--alert-webhook-port", "9", "--alert-webhook-token-file", str(path)
        )
        assert result.exit_code == 3
        assert "--alert-webhook-token-file" in result.output and str(path) in result.output


def test_a_taken_webhook_port_exits_4_before_any_traffic_moves(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli(
            tmp_path,
            "--alert-webhook-port",
            port,
            "--alert-webhook-token-file",
            str(tmp_path / "token"),
        )
    assert result.exit_code == 4, result.output
    assert "--alert-webhook-port" in result.output and "no traffic was changed" in result.output
    assert not list((tmp_path / "state").glob("*.json"))
    assert SECRET not in result.output
