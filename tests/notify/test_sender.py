"""The background senders against real HTTP receivers on 127.0.0.1: delivered and signed,
retried through 500s, given up on (and logged) when the receiver is down, refuses, or is
too slow, and never waited for by the caller."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from functools import partial

import pytest

from rollout.demo.procs import free_port
from rollout.notify.notices import Notice
from rollout.notify.payloads import DELIVERY_HEADER, SIGNATURE_HEADER, webhook_request
from rollout.notify.sender import QUEUE_SIZE, Destination, Sender
from rollout.routers.base import ALL_BASELINE
from rollout.spec import NoticeKind
from tests.support.receiver import Receiver

SECRET = "hmac-4c1d-never-print-me"
NOTICE = Notice(
    kind=NoticeKind.ROLLED_BACK,
    rollout="fraud",
    namespace="ml",
    model="fraud-detector",
    baseline="v1",
    candidate="v2",
    phase="RolledBack",
    step=1,
    steps=2,
    weights=ALL_BASELINE,
    confirmed=True,
    reason="regression confirmed: error rate 5.0% against 0.0%",
    at=1_700_000_000.0,
)


def destination(url: str, timeout: float = 5.0, secret: str | None = SECRET) -> Destination:
    return Destination(
        name="webhooks[0] (127.0.0.1)",
        url=url,
        events=frozenset(NoticeKind),
        timeout=timeout,
        request=partial(webhook_request, secret=secret),
    )


def send(url: str, *, attempts: int = 4, timeout: float = 5.0, flush: float = 30.0) -> Sender:
    sender = Sender([destination(url, timeout)], attempts=attempts, backoff=0.05)
    sender.submit(NOTICE)
    sender.close(flush)
    return sender


def test_a_notice_arrives_once_as_json_signed_with_the_secret() -> None:
    with Receiver() as receiver:
        sender = send(receiver.url)
    assert sender.counts() == {"webhooks[0] (127.0.0.1)": (1, 0, 0)}
    (got,) = receiver.received
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers[SIGNATURE_HEADER], f"sha256={expected}")
    document = got.json()
    assert document["event"] == "rolled_back" and document["model"] == "fraud-detector"
    assert document["weights"] == {"baseline": 100, "candidate": 0}
    assert document["weights_confirmed"] is True
    assert document["id"] == got.headers[DELIVERY_HEADER] == NOTICE.id
    assert SECRET not in got.body.decode()


def test_a_tampered_body_does_not_verify() -> None:
    body, headers = webhook_request(NOTICE, SECRET)
    tampered = body.replace(b"rolled_back", b"promoted")
    mac = hmac.new(SECRET.encode(), tampered, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] != f"sha256={mac}"
    assert SIGNATURE_HEADER not in webhook_request(NOTICE, None)[1]


def test_500s_are_retried_until_the_receiver_takes_it() -> None:
    with Receiver(answer=lambda n: 500 if n < 2 else 200) as receiver:
        sender = send(receiver.url)
    assert sender.counts()["webhooks[0] (127.0.0.1)"] == (1, 0, 0)
    assert len(receiver.received) == 3
    # Every retry is the same delivery, byte for byte: a receiver drops duplicates by its id.
    assert len({r.body for r in receiver.received}) == 1
    assert len({r.headers[DELIVERY_HEADER] for r in receiver.received}) == 1


def test_a_receiver_answering_500_is_given_up_on_after_the_attempts_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rollout.notify")
    with Receiver(answer=lambda n: 500) as receiver:
        sender = send(receiver.url, attempts=3)
    assert len(receiver.received) == 3
    assert sender.counts()["webhooks[0] (127.0.0.1)"] == (0, 1, 0)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "failed after 3 attempt(s): HTTP 500" in line
    assert "rolled_back" in line and "webhooks[0] (127.0.0.1)" in line
    assert receiver.url not in caplog.text and SECRET not in caplog.text


def test_a_refusal_is_not_retried() -> None:
    with Receiver(answer=lambda n: 403) as receiver:
        sender = send(receiver.url, attempts=5)
    assert len(receiver.received) == 1
    assert sender.counts()["webhooks[0] (127.0.0.1)"] == (0, 1, 0)


def test_a_receiver_that_is_down_is_logged_without_its_url_or_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rollout.notify")
    url = f"http://127.0.0.1:{free_port()}/hook?token=tok-77-url-secret"  # nothing listens
    sender = send(url, attempts=3)
    assert sender.counts()["webhooks[0] (127.0.0.1)"] == (0, 1, 0)
    assert "failed after 3 attempt(s): cannot connect" in caplog.text
    assert "tok-77-url-secret" not in caplog.text and SECRET not in caplog.text


def test_a_slow_receiver_is_given_up_on_at_the_exit_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each attempt waits the destination's timeout; close() stops retrying at its deadline
    and says what was not sent."""
    caplog.set_level(logging.INFO, logger="rollout.notify")
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        sender = send(receiver.url, attempts=20, timeout=0.5, flush=2.0)
        hold.set()
    assert sender.counts()["webhooks[0] (127.0.0.1)"] == (0, 1, 0)
    assert len(receiver.received) >= 2  # retried after the first timed out
    assert "no answer within" in caplog.text


def test_submit_never_waits_and_a_full_queue_drops(caplog: pytest.LogCaptureFixture) -> None:
    """A receiver holding every request: submitting is queueing; past the queue's bound
    notices are dropped (and logged), not waited for."""
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        sender = Sender([destination(receiver.url)], attempts=1)
        for _ in range(QUEUE_SIZE + 50):
            sender.submit(NOTICE)
        receiver.wait_for(1)  # one is in flight, held; the rest wait in the queue
        hold.set()
        sender.close(60.0)
    sent, failed, dropped = sender.counts()["webhooks[0] (127.0.0.1)"]
    assert 49 <= dropped <= 50 and sent + failed + dropped == QUEUE_SIZE + 50
    assert "dropped" in caplog.text
