"""A loopback HTTP proxy in front of a real Prometheus, with switchable faults.

`FaultProxy(upstream).start()` forwards every request to the upstream Prometheus
unchanged until a fault is switched on with `proxy.fault = Fault.X`. Faults on the
answer's content (NaN, +Inf, empty result, one version) rewrite the real answer of
`/api/v1/query` and `/api/v1/query_range`, GET or POST: a matrix (range vector: every sample
of every series in `values`), an instant vector (`value`) or a scalar alike, as Prometheus
itself would write them ("NaN", "+Inf"). The others (slow, HTTP 500, invalid JSON, hold)
replace any API answer.
The proxy records the headers it was sent (to prove a token travels) and signals
when a request arrives (`arrived`), so a test can act while a query is in flight.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx


class Fault(StrEnum):
    NONE = "none"
    SLOW = "slow"  # answers after `delay` seconds (longer than the source's timeout)
    HTTP_500 = "http-500"
    INVALID_JSON = "invalid-json"
    NAN = "nan"  # every sample value becomes NaN
    INF = "inf"  # every sample value becomes +Inf
    EMPTY = "empty"  # every vector and matrix comes back without series
    ONE_VERSION = "one-version"  # only the series of `keep_version` survive
    HOLD = "hold"  # the request waits until `release()` (or the fault changes)
    ECHO_HEADERS = "echo-headers"  # HTTP 500 whose error message repeats the request's headers


CONTENT_FAULTS = (Fault.NAN, Fault.INF, Fault.EMPTY, Fault.ONE_VERSION)
QUERY_PATHS = ("/api/v1/query", "/api/v1/query_range")  # answers with series to rewrite
SPECIAL_VALUES = {Fault.NAN: "NaN", Fault.INF: "+Inf"}  # Prometheus' own spelling


class FaultProxy:
    """A real HTTP server on 127.0.0.1 forwarding to `upstream` (a Prometheus base URL)."""

    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 3.0,
        keep_version: str = "",
        version_label: str = "model_version",
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.keep_version = keep_version
        self.version_label = version_label
        self.fault = Fault.NONE
        self.arrived = threading.Event()  # set whenever an API request comes in
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._headers: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=30.0)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fault proxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def switch(self, fault: Fault) -> None:
        """Change the fault; requests held by HOLD are let go when it changes."""
        self.fault = fault
        if fault is not Fault.HOLD:
            self.released.set()
        else:
            self.released.clear()
        self.arrived.clear()

    def release(self) -> None:
        self.released.set()

    def forget(self) -> None:
        """Drop the headers recorded so far."""
        with self._lock:
            self._headers.clear()

    def seen_headers(self) -> list[dict[str, str]]:
        """Headers of every API request so far, names lower-cased."""
        with self._lock:
            return list(self._headers)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy._handle(self, self.rfile.read(length))

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client.close()

    def __enter__(self) -> FaultProxy:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ one request

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes | None) -> None:
        fault = self.fault
        api = request.path.startswith("/api/")
        if api:
            with self._lock:
                self._headers.append({k.lower(): v for k, v in request.headers.items()})
            self.arrived.set()
        try:
            status, content_type, payload = self._answer(request, body, fault if api else None)
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up first (a timeout): nothing to answer
        except httpx.TransportError:
            return  # Prometheus is down: close without an answer, as it would be unreachable
        except RuntimeError:
            return  # a SLOW answer outlived the proxy: its client is closed

    def _answer(
        self, request: BaseHTTPRequestHandler, body: bytes | None, fault: Fault | None
    ) -> tuple[int, str, bytes]:
        if fault is Fault.HOLD:
            self.released.wait(timeout=120)
        elif fault is Fault.SLOW:
            time.sleep(self.delay)
        elif fault is Fault.HTTP_500:
            error = {"status": "error", "errorType": "internal", "error": "injected fault"}
            return 500, "application/json", json.dumps(error).encode()
        elif fault is Fault.ECHO_HEADERS:  # a careless server or proxy quoting credentials
            quoted = "; ".join(f"{k}: {v}" for k, v in sorted(request.headers.items()))
            error = {"status": "error", "errorType": "bad_data", "error": quoted}
            return 500, "application/json", json.dumps(error).encode()
        elif fault is Fault.INVALID_JSON:
            return 200, "application/json", b'{"status": "success", "data": {"resultType'
        forwarded = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        upstream = self._client.request(
            request.command, self.upstream + request.path, headers=forwarded, content=body
        )
        payload = upstream.content
        if fault in CONTENT_FAULTS and urlsplit(request.path).path in QUERY_PATHS:
            payload = self._rewrite(payload, fault)
        content_type = upstream.headers.get("content-type", "application/json")
        return upstream.status_code, content_type, payload

    def _rewrite(self, payload: bytes, fault: Fault) -> bytes:
        """The answer with `fault` applied to its series; anything else passes unchanged."""
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            document: Any = json.loads(payload)
            data = document.get("data", {})
            kind = data.get("resultType")
            if kind in ("vector", "matrix"):
                rows = [self._series(row, fault) for row in data["result"]]
                data["result"] = [row for row in rows if row is not None]
            elif kind == "scalar" and fault in SPECIAL_VALUES:
                data["result"] = [data["result"][0], SPECIAL_VALUES[fault]]
            else:
                return payload
            return json.dumps(document).encode()
        return payload

    def _series(self, row: dict[str, Any], fault: Fault) -> dict[str, Any] | None:
        """One series of a vector (`value`) or a matrix (`values`), or None to drop it."""
        if fault is Fault.EMPTY:
            return None
        if fault is Fault.ONE_VERSION:
            keep = row.get("metric", {}).get(self.version_label) == self.keep_version
            return row if keep else None
        if fault in SPECIAL_VALUES:
            value = SPECIAL_VALUES[fault]
            if "value" in row:
                row["value"] = [row["value"][0], value]
            if "values" in row:
                row["values"] = [[at, value] for at, _ in row["values"]]
        return row
