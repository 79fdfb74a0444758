"""`/healthz` (liveness) and `/readyz` (readiness) for the kubelet's probes.

Each path maps to a check returning "" when healthy, else why not (503 with that text).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Check = Callable[[], str]


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' or ':PORT' (every interface, as in a pod) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT or :PORT, e.g. :8081 or 127.0.0.1:8081")
    return host or "0.0.0.0", int(port)


class HealthServer:
    def __init__(self, address: tuple[str, int], checks: Mapping[str, Check]) -> None:
        routes = dict(checks)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                check = routes.get(self.path.split("?", 1)[0])
                if check is None:
                    self._answer(404, "not found")
                    return
                try:
                    problem = check()
                except Exception as exc:  # a failing check is a failing probe
                    problem = f"check failed: {exc}"
                self._answer(503 if problem else 200, problem or "ok")

            def _answer(self, code: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # probes every few seconds would drown the controller's log

        self._server = ThreadingHTTPServer(address, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
