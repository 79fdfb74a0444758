"""Notifications on step, promotion, rollback, pause and abort: a generic JSON webhook
(HMAC-SHA256 signed when a secret is set) and Slack messages, from the spec's
`notifications`. `Notifier` is an observer of the reconciler (rollout/observe.py): it
derives the notices (notices.py), shapes them (payloads.py) and queues them for the
background senders (sender.py), so nothing here waits on a receiver.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from rollout.notify.notices import Notice, notices
from rollout.notify.payloads import slack_request, webhook_request
from rollout.notify.sender import Destination, Sender
from rollout.reconcile import Outcome, Rollout
from rollout.spec import NotificationsConfig, file_problem, read_secret_file

__all__ = ["FLUSH_SECONDS", "Notice", "Notifier", "build_notifier"]

FLUSH_SECONDS = 10.0  # at exit, how long queued notices may still take to go out


class Notifier:
    """An observer that queues a notice for every step and decision it sees."""

    def __init__(self, sender: Sender, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.sender = sender
        self.flush_seconds = flush_seconds

    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        for notice in notices(rollout, outcome):
            self.sender.submit(notice)

    def close(self) -> None:
        self.sender.close(self.flush_seconds)


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def build_notifier(
    config: NotificationsConfig,
    source: str = "spec",
    *,
    backoff: float = 0.5,
    flush_seconds: float = FLUSH_SECONDS,
) -> Notifier | None:
    """The spec's destinations with their secrets read now; None when there are none.
    SpecError naming the field when a secret file cannot be read any more."""
    destinations = []
    for i, hook in enumerate(config.webhooks):
        field = f"spec.notifications.webhooks.{i}"
        secret = None
        if hook.secret_file is not None:
            secret = _read(hook.secret_file, source, f"{field}.secretFile")
        destinations.append(
            Destination(
                name=f"webhooks[{i}] ({_host(hook.url)})",
                url=hook.url,
                events=frozenset(hook.events),
                timeout=hook.timeout,
                request=partial(webhook_request, secret=secret),
            )
        )
    for i, slack in enumerate(config.slack):
        field = f"spec.notifications.slack.{i}"
        if slack.url_file is not None:
            url = _read(slack.url_file, source, f"{field}.urlFile")
        else:
            assert slack.url is not None  # the model requires one of them
            url = slack.url.get_secret_value()
        destinations.append(
            Destination(
                name=f"slack[{i}] ({_host(url)})",
                url=url,
                events=frozenset(slack.events),
                timeout=slack.timeout,
                request=slack_request,
            )
        )
    if not destinations:
        return None
    sender = Sender(destinations, attempts=config.attempts, backoff=backoff)
    return Notifier(sender, flush_seconds)


def _read(path: Path, source: str, field: str) -> str:
    try:
        return read_secret_file(path)
    except ValueError as exc:
        raise file_problem(source, field, str(exc)) from None
