"""What a Gateway API implementation does with an HTTPRoute, for the end-to-end tests: a
proxy on 127.0.0.1 that sends each request to one of the route's backends, chosen with the
route's weights (weight / sum of the rule's weights, unset 1, 0 none), which it reads again
from the API server every `refresh` seconds as a gateway controller watches its routes.

So the traffic the model servers see, and so Prometheus' numbers, follow the HTTPRoute the
controller writes; a backend is a name mapped to a real server's address."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from rollout.routers.gateway_api import HTTP_ROUTE
from rollout.routers.k8s_objects import ObjectRef

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class GatewayPlane:
    """`start()`, send requests to `url`, `stop()`; `history` is every split it applied."""

    def __init__(
        self,
        api_url: str,
        namespace: str,
        route: str,
        backends: Mapping[str, str],  # backendRef name -> host:port
        refresh: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.route_url = api_url + ObjectRef(HTTP_ROUTE, namespace, route, "").path
        self.backends = dict(backends)
        self.refresh = refresh
        self.history: list[tuple[tuple[str, int], ...]] = []  # the weights, each time they changed
        self.served: Counter[str] = Counter()  # requests per backend
        self._weights: tuple[tuple[str, int], ...] = ()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._client = httpx.Client(timeout=10.0)
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                plane._forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GatewayPlane:
        self._read_route()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._client.close()

    def weights(self) -> dict[str, int]:
        with self._lock:
            return dict(self._weights)

    def _watch(self) -> None:
        while not self._stopping.wait(self.refresh):
            try:
                self._read_route()
            except httpx.HTTPError:
                continue  # keep routing with the last weights, as a gateway does

    def _read_route(self) -> None:
        answer = self._client.get(self.route_url)
        answer.raise_for_status()
        weights: list[tuple[str, int]] = []
        for rule in answer.json()["spec"]["rules"]:
            for ref in rule.get("backendRefs") or []:
                if ref["name"] in self.backends:
                    weights.append((ref["name"], int(ref.get("weight", 1))))
        current = tuple(weights)
        with self._lock:
            if current != self._weights:
                self._weights = current
                self.history.append(current)

    def _choose(self) -> str | None:
        with self._lock:
            names = [name for name, _ in self._weights]
            weights = [weight for _, weight in self._weights]
            if sum(weights) == 0:
                return None
            name = self._rng.choices(names, weights)[0]
            self.served[name] += 1
            return name

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        backend = self._choose()
        if backend is None:  # every weight 0: a gateway answers 500
            request.send_response(500)
            request.send_header("content-length", "0")
            request.end_headers()
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            answer = self._client.post(
                f"http://{self.backends[backend]}{request.path}", content=body, headers=headers
            )
        except httpx.HTTPError:
            request.send_response(502)
            request.send_header("content-length", "0")
            request.end_headers()
            return
        request.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                request.send_header(key, value)
        request.send_header("content-length", str(len(answer.content)))
        request.end_headers()
        request.wfile.write(answer.content)
