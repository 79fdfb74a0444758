"""Sending notices in the background: one thread and one bounded queue per destination.

Nothing here may hold up a rollout: `submit` only queues (a full queue drops the notice,
with a warning), the HTTP requests and their retries (tenacity: exponential backoff with
jitter, on a connection failure, a timeout, 408, 429 or 5xx) run on the destination's
thread. `close(timeout)` lets the queues drain until the deadline, then gives up on what
is left, saying how many notices were not sent. Logs name a destination by its place in
the spec and its host, never by its URL (a Slack URL is a token) or its secret.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from rollout.notify.notices import Notice
from rollout.spec import NoticeKind

log = logging.getLogger("rollout.notify")

QUEUE_SIZE = 100  # notices waiting per destination; more are dropped, never waited for
RETRY_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Destination:
    """Where notices go; `request` turns one into (body, headers). `url` is never shown."""

    name: str  # e.g. "webhooks[0] (hooks.example.com)"
    url: str
    events: frozenset[NoticeKind]
    timeout: float
    request: Callable[[Notice], tuple[bytes, dict[str, str]]]


class Retryable(Exception):
    """This attempt failed; another may not."""


class Refused(Exception):
    """The receiver refused the notice (a 4xx): retrying would not change its answer."""


class _Worker:
    def __init__(
        self, destination: Destination, attempts: int, backoff: float, queue_size: int
    ) -> None:
        self.destination = destination
        self.attempts = attempts
        self.backoff = backoff
        self.queue_size = queue_size
        self._queue: queue.Queue[Notice | None] = queue.Queue()  # bounded by `submit`
        self._closing = threading.Event()
        self._deadline = math.inf  # monotonic; set by close()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._client = httpx.Client(follow_redirects=False)
        # Started by the first notice: a run that announces nothing starts no thread.
        self._starting = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"notify {destination.name}", daemon=True
        )

    def submit(self, notice: Notice) -> None:
        if self._closing.is_set():
            return
        with self._starting:  # a controller's workers may submit at once
            if self._thread.ident is None:
                self._thread.start()
        if self._queue.qsize() >= self.queue_size:
            self.dropped += 1
            log.warning(
                "notification %s of rollout %s to %s dropped: %d notices are waiting for it",
                notice.kind.value, notice.rollout, self.destination.name, self.queue_size,
                extra={"fields": _fields(notice, self.destination)},
            )  # fmt: skip
            return
        self._queue.put(notice)

    def finish_by(self, deadline: float) -> None:
        """Stop taking notices; send what is queued until `deadline` (monotonic)."""
        self._deadline = deadline
        self._closing.set()
        self._queue.put(None)
        if self._thread.ident is None:  # never started: nothing to send
            self._client.close()

    def join(self) -> None:
        if self._thread.ident is not None:
            self._thread.join(max(0.0, self._deadline - time.monotonic()) + 1.0)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            while (notice := self._queue.get()) is not None:
                if time.monotonic() >= self._deadline:
                    self._abandon(notice)
                    continue
                self._deliver(notice)
        finally:
            self._client.close()

    def _abandon(self, notice: Notice) -> None:
        self.failed += 1
        log.warning(
            "notification %s of rollout %s to %s not sent: the rollout process is exiting",
            notice.kind.value, notice.rollout, self.destination.name,
            extra={"fields": _fields(notice, self.destination)},
        )  # fmt: skip

    def _deliver(self, notice: Notice) -> None:
        body, headers = self.destination.request(notice)
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | StopWhen(self._past_deadline),
            wait=wait_exponential(multiplier=self.backoff, max=30.0) + wait_random(0, self.backoff),
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._post(body, headers)
        except (Retryable, Refused) as exc:
            self.failed += 1
            tries = retrying.statistics.get("attempt_number", 1)
            log.warning(
                "notification %s of rollout %s to %s failed after %d attempt(s): %s",
                notice.kind.value, notice.rollout, self.destination.name, tries, exc,
                extra={"fields": _fields(notice, self.destination)},
            )  # fmt: skip
            return
        self.sent += 1
        log.info(
            "notification %s of rollout %s sent to %s",
            notice.kind.value, notice.rollout, self.destination.name,
            extra={"fields": _fields(notice, self.destination)},
        )  # fmt: skip

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        timeout = min(self.destination.timeout, max(0.1, self._deadline - time.monotonic()))
        try:
            response = self._client.post(
                self.destination.url, content=body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            raise Retryable(f"no answer within {timeout:g}s") from None
        except httpx.TransportError as exc:
            # The exception's text may hold the URL: only its kind is told.
            raise Retryable(f"cannot connect ({type(exc).__name__})") from None
        status = response.status_code
        if status >= 500 or status in RETRY_STATUS:
            raise Retryable(f"HTTP {status}")
        if status >= 300:
            raise Refused(f"HTTP {status} (refused; not retried)")

    def _past_deadline(self) -> bool:
        return time.monotonic() >= self._deadline

    def _sleep(self, seconds: float) -> None:
        """Back off, but never past the deadline `close` sets meanwhile."""
        end = time.monotonic() + seconds
        while (left := min(end, self._deadline) - time.monotonic()) > 0:
            if self._closing.is_set():
                time.sleep(left)
                return
            self._closing.wait(left)


class StopWhen(stop_base):
    """Stop retrying once `done()` says so (the exit deadline has passed)."""

    def __init__(self, done: Callable[[], bool]) -> None:
        self.done = done

    def __call__(self, retry_state: object) -> bool:
        return self.done()


def _fields(notice: Notice, destination: Destination) -> dict[str, object]:
    """The structured fields of a notification's log line (JSON logs)."""
    return {
        "rollout": notice.rollout,
        "namespace": notice.namespace,
        "model": notice.model,
        "versions": {"baseline": notice.baseline, "candidate": notice.candidate},
        "step": notice.step,
        "notice": notice.kind.value,
        "destination": destination.name,
    }


class Sender:
    """Notices to every destination that wants their kind, each on its own thread."""

    def __init__(
        self,
        destinations: list[Destination],
        *,
        attempts: int,
        backoff: float = 0.5,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._workers = [_Worker(d, attempts, backoff, queue_size) for d in destinations]

    def submit(self, notice: Notice) -> None:
        """Queue `notice`; returns at once."""
        for worker in self._workers:
            if notice.kind in worker.destination.events:
                worker.submit(notice)

    def close(self, timeout: float) -> None:
        """Send what is queued until `timeout` seconds from now, then give up on the rest."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.finish_by(deadline)  # all drain at once
        for worker in self._workers:
            worker.join()

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """Per destination: (sent, failed, dropped)."""
        return {w.destination.name: (w.sent, w.failed, w.dropped) for w in self._workers}
