"""Alertmanager's webhook: a firing alert on a rollout's candidate stops the rollout.

Pure: `parse_notification(body)` checks a webhook notification (payload version "4") field by
field (`PayloadError` names the field) into `Alert`s; `Dispatcher` hands each firing alert
to `deliver(model, version, alert) -> bool` (True: a rollout took it), the model and version
read from the alert's labels, and remembers the firings delivered (bounded), so a flood of
repeats is delivered once. Resolved alerts are ignored: a rollout stopped by an alert stays
stopped for a person to decide.

HTTP, at the edge: `AlertReceiver` serves `POST /alerts` on a `ThreadingHTTPServer`
(127.0.0.1 unless told otherwise). A request must carry `Authorization: Bearer <secret>`
(Alertmanager's `http_config.authorization`) or `X-Signature: sha256=<hex HMAC-SHA256 of
the body, keyed with the secret>`, both compared in constant time: else 401, and nothing
is delivered. A body over the limit is 413, one that is not a notification 400. The secret
comes from a file (`read_secret`) and is never shown: not in logs, answers or exceptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from rollout.engine import AlertFired

PATH: Final = "/alerts"
MAX_BODY_BYTES: Final = 1024 * 1024  # Alertmanager's notifications are kilobytes
# A refused body is still read (up to this) before the answer: closing a socket with unread
# data resets the connection, and the client would never see its 401 or 413.
MAX_DISCARD_BYTES: Final = 16 * MAX_BODY_BYTES
MAX_SECRET_BYTES: Final = 4096
MAX_TEXT: Final = 200  # a label value or summary kept in the rollout's state and report
REQUEST_TIMEOUT: Final = 10.0  # seconds a client may take to send its request

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- the secret


class SecretFileError(Exception):
    """The token file cannot be used; the message names the file, never its content."""


class WebhookSecret:
    """The bearer token, also the HMAC key; its repr hides it."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not value:
            raise ValueError("an empty secret authenticates nobody")
        self._value = value

    def __repr__(self) -> str:
        return "WebhookSecret(***)"

    def bearer_matches(self, authorization: str) -> bool:
        scheme, _, token = authorization.strip().partition(" ")
        given = token.strip().encode("utf-8", "surrogateescape")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._value)

    def signature_matches(self, signature: str, body: bytes) -> bool:
        given = signature.strip().removeprefix("sha256=").lower().encode("utf-8", "replace")
        expected = hmac.new(self._value, body, hashlib.sha256).hexdigest().encode()
        return hmac.compare_digest(given, expected)


def read_secret(path: Path) -> WebhookSecret:
    """The secret in `path`, without surrounding whitespace (as Alertmanager sends it)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileError(
            f"{path}: over {MAX_SECRET_BYTES} bytes; give the file that holds only the token"
        )
    value = raw.strip()
    if not value:
        raise SecretFileError(f"{path}: empty; write the token Alertmanager sends into it")
    return WebhookSecret(value)


# ---------------------------------------------------------------------------- the payload


class PayloadError(ValueError):
    """A request body that is not an Alertmanager webhook notification."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Alert:
    name: str  # the alertname label
    firing: bool  # else resolved
    labels: tuple[tuple[str, str], ...]  # sorted by name
    starts_at: float  # unix seconds
    fingerprint: str
    summary: str = ""  # the `summary` annotation

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    def fired(self) -> AlertFired:
        """The engine's event, its texts clipped: they are kept in the state and the report."""
        labels = tuple((k, _clip(v)) for k, v in self.labels)
        return AlertFired(
            _clip(self.name), labels, self.starts_at, _clip(self.fingerprint), _clip(self.summary)
        )


def parse_notification(body: bytes) -> tuple[Alert, ...]:
    """The alerts of an Alertmanager webhook notification; PayloadError names what is wrong."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError("(body)", f"not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise PayloadError("(body)", "expected a JSON object (an Alertmanager notification)")
    version = document.get("version")
    if version != "4":
        raise PayloadError(
            "version", f'expected "4" (the Alertmanager webhook payload), got {_shown(version)}'
        )
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"expected a list of alerts, got {_shown(alerts)}")
    return tuple(_alert(item, f"alerts[{i}]") for i, item in enumerate(alerts))


def _alert(item: Any, where: str) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError(where, "expected an object")
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(
            f"{where}.status", f'expected "firing" or "resolved", got {_shown(status)}'
        )
    labels = _strings(item.get("labels"), f"{where}.labels")
    annotations = _strings(item.get("annotations", {}), f"{where}.annotations")
    starts_at = _time(item.get("startsAt"), f"{where}.startsAt")
    fingerprint = item.get("fingerprint")
    if fingerprint is None:  # Alertmanager's is of the labels too
        canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    elif not isinstance(fingerprint, str) or not fingerprint:
        raise PayloadError(f"{where}.fingerprint", f"expected a string, got {_shown(fingerprint)}")
    return Alert(
        name=labels.get("alertname", "(no alertname)"),
        firing=status == "firing",
        labels=tuple(sorted(labels.items())),
        starts_at=starts_at,
        fingerprint=fingerprint,
        summary=annotations.get("summary", ""),
    )


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(where, f"expected an object of strings, got {_shown(value)}")
    for key, text in value.items():
        if not isinstance(text, str):
            raise PayloadError(f"{where}.{key}", f"expected a string, got {_shown(text)}")
    return value


def _time(value: Any, where: str) -> float:
    """RFC 3339 with its offset, as Alertmanager writes it (nanoseconds included)."""
    if not isinstance(value, str):
        raise PayloadError(where, f"expected an RFC 3339 time, got {_shown(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(where, f"expected an RFC 3339 time, got {_shown(value)}") from None
    if parsed.tzinfo is None:
        raise PayloadError(where, f"expected a time with its offset (Z or +hh:mm), got {value!r}")
    return parsed.timestamp()


def _shown(value: Any) -> str:
    return _clip(repr(value), 60)


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- dispatch

Deliver = Callable[[str, str, Alert], bool]


class Unavailable(Exception):
    """`deliver` cannot act now (a controller replica that is not the leader): the
    notification is answered 503, which Alertmanager retries."""


@dataclass(frozen=True)
class Dispatched:
    received: int
    firing: int
    delivered: int  # taken by a rollout now
    repeated: int  # firings delivered before: not again


class Dispatcher:
    """Firing alerts to `deliver(model, version, alert)`, by the alert's labels; each firing
    (fingerprint and start) once, of the `remember` delivered last. Thread-safe."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        model_label: str = "model_name",
        version_label: str = "model_version",
        remember: int = 1024,
    ) -> None:
        self._deliver = deliver
        self._model_label = model_label
        self._version_label = version_label
        self._remember = remember
        self._delivered: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def dispatch(self, alerts: tuple[Alert, ...]) -> Dispatched:
        firing = delivered = repeated = 0
        with self._lock:  # one notification at a time: repeats sent at once act once too
            for alert in alerts:
                model, version = alert.label(self._model_label), alert.label(self._version_label)
                if not alert.firing or model is None or version is None:
                    continue
                firing += 1
                seen = (model, version, alert.fired().key)
                if seen in self._delivered:
                    repeated += 1
                    self._delivered.move_to_end(seen)
                    continue
                if self._deliver(model, version, alert):
                    delivered += 1
                    self._delivered[seen] = None
                    while len(self._delivered) > self._remember:
                        self._delivered.popitem(last=False)
        return Dispatched(len(alerts), firing, delivered, repeated)


# ---------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class AlertWebhook:
    """Where `rollout run --alert-webhook-port` listens, and the secret requests must carry."""

    port: int
    secret: WebhookSecret
    address: str = "127.0.0.1"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets a burst of notifications
    receiver: AlertReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or stalls: one line, not socketserver's traceback on stderr."""
        failure = sys.exc_info()[1]
        logger.info("alert webhook: a request from %s failed (%r)", client_address, failure)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rollout-alerts"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = self._length()
        if length is None:
            return
        if self.path.split("?", 1)[0] != PATH:
            self._discard(length)
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST the notifications to {PATH}"})
            return
        authorization = self.headers.get("Authorization")
        signature = self.headers.get("X-Signature")
        bearer = authorization is not None and receiver.secret.bearer_matches(authorization)
        if not bearer and signature is None:
            self._discard(length)
            self._unauthorized()
            return
        if length > receiver.max_body:
            self._discard(length)
            self._answer(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"body of {length} bytes: over the limit of {receiver.max_body}"},
            )
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": "body shorter than its Content-Length"})
            return
        if not bearer and not (signature and receiver.secret.signature_matches(signature, body)):
            self._unauthorized()
            return
        try:
            alerts = parse_notification(body)
        except PayloadError as exc:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        try:
            done = receiver.dispatcher.dispatch(alerts)
        except Unavailable as exc:  # Alertmanager retries a 5xx (the leader will take it)
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        except Exception:
            logger.exception("the alert webhook could not deliver a notification")
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "could not deliver"})
            return
        self._answer(HTTPStatus.OK, dataclasses.asdict(done))

    def _length(self) -> int | None:
        """The body's length; None when it cannot be known (answered 411 or 400)."""
        raw = self.headers.get("Content-Length")
        if raw is None:
            self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return None
        if not raw.strip().isdigit():
            self._answer(HTTPStatus.BAD_REQUEST, {"error": "Content-Length is not a number"})
            return None
        return int(raw)

    def _discard(self, length: int) -> None:
        left = min(length, MAX_DISCARD_BYTES)
        with contextlib.suppress(OSError):
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)

    def _unauthorized(self) -> None:
        self._answer(
            HTTPStatus.UNAUTHORIZED,
            {"error": "send Authorization: Bearer <token> or X-Signature: sha256=<HMAC>"},
            {"WWW-Authenticate": 'Bearer realm="rollout alerts"'},
        )

    def _answer(
        self,
        status: HTTPStatus,
        body: Mapping[str, object],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the console is the rollout's."""


class AlertReceiver:
    """`POST /alerts` on `address:port` (port 0: any free one), delivering firing alerts to
    `deliver(model, version, alert)`. Binds at construction (OSError when it cannot);
    `start()` serves on threads, `stop()` (or leaving the `with`) stops."""

    def __init__(
        self,
        secret: WebhookSecret,
        deliver: Deliver,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        model_label: str = "model_name",
        version_label: str = "model_version",
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.secret = secret
        self.max_body = max_body
        self.dispatcher = Dispatcher(deliver, model_label=model_label, version_label=version_label)
        self._server = (_Server6 if ":" in address else _Server)((address, port), _Handler)
        self._server.receiver = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{PATH}"

    def start(self) -> AlertReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="alert-webhook", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> AlertReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
