"""A real HTTP server on 127.0.0.1 that answers every GET with a fixed response.

Serves a static OpenMetrics exposition for Prometheus to scrape (exemplars need a
live scrape: promtool's backfill drops them), or plays a broken Prometheus that
answers garbage, an HTTP error, or echoes the request's headers back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# (status, content type, body) from the request's headers
Responder = Callable[[dict[str, str]], tuple[int, str, str]]


@dataclass
class StaticServer:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def serve(responder: Responder) -> StaticServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = responder(dict(self.headers.items()))
            payload = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return StaticServer(server, thread)


def serve_text(body: str, content_type: str = OPENMETRICS, status: int = 200) -> StaticServer:
    return serve(lambda _headers: (status, content_type, body))
