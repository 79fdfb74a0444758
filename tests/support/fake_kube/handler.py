"""HTTP: routes a request to discovery or to a resource, speaks JSON, streams watches."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.support.fake_kube import discovery, openapi
from tests.support.fake_kube.cluster import Cluster
from tests.support.fake_kube.errors import ApiError, bad_request
from tests.support.fake_kube.kinds import Kind
from tests.support.fake_kube.selectors import FieldSelector, LabelSelector, SelectorError
from tests.support.fake_kube.store import Change, StoreClosed
from tests.support.fake_kube.tables import table

# The API server's default for a watch without timeoutSeconds (its --min-request-timeout).
DEFAULT_WATCH_SECONDS = 1800
_POLL_SECONDS = 0.5


class RecordedRequest(NamedTuple):
    method: str
    path: str
    status: int


class RequestLog:
    """Every answered request, oldest first; survives a restart of the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []

    def add(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)


@dataclass
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int


class Faults:
    """Errors to answer instead of serving, for the next matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def add(self, method: str, path_regex: str, status: int, times: int) -> None:
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), status, times))

    def take(self, method: str, path: str) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method == method and fault.path.search(path):
                    fault.remaining -= 1
                    return fault.status
        return None


@dataclass(frozen=True)
class Route:
    kind: Kind
    namespace: str | None
    name: str
    subresource: str


class ApiHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cluster: Cluster, faults: Faults, log: RequestLog, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), ApiHandler)
        self.cluster = cluster
        self.faults = faults
        self.log = log
        self._connections: set[Any] = set()
        self._connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is no error of the server's; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def track(self, connection: Any, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """Drop keep-alive and watch connections, as a stopping server does."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource")


def _table_version(accept: str) -> str | None:
    """The Table version kubectl asks for first, if it asks for one before plain JSON."""
    for media in accept.split(","):
        kind, *raw = (part.strip() for part in media.split(";"))
        params = dict(p.split("=", 1) for p in raw if "=" in p)
        if kind not in ("application/json", "*/*"):
            continue
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            if params.get("v") in ("v1", "v1beta1"):
                return params["v"]
            continue
        if "as" not in params:
            return None
    return None


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHttpServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is `FakeApiServer.requests`."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # ------------------------------------------------------------------------- plumbing

    def _record(self, status: int) -> None:
        self.server.log.add(RecordedRequest(self.command, urlsplit(self.path).path, status))

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self._record(status)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, raw: bytes, required: bool = True) -> Any:
        if not raw.strip():
            if required:
                raise bad_request("the request has no body")
            return None
        media = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if not (media == "application/json" or media.endswith("+json")):
            # The real server also takes protobuf (kubectl's typed commands such as `kubectl
            # create namespace` send it); this fake speaks JSON only: use `kubectl apply`.
            raise ApiError(
                415, f"the fake API server takes JSON bodies only, not {media}: use kubectl apply"
            )
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"the body is not valid JSON: {exc}") from None

    def _handle(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            raw = self._read_body()
            status = self.server.faults.take(self.command, split.path)
            if status is not None:
                raise ApiError(status, f"injected fault: {status} for {self.command} {split.path}")
            self._dispatch(split.path, query, raw)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except OSError:  # the client hung up, or the server is stopping
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: say so loudly, answer like the server
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, ApiError(500, f"fake API server bug: {exc!r}").status())

    # ------------------------------------------------------------------------- routing

    def _dispatch(self, path: str, query: dict[str, str], raw: bytes) -> None:
        registry = self.server.cluster.registry
        segments = [s for s in path.split("/") if s]
        if path in ("/healthz", "/livez", "/readyz"):
            self._send_json(200, "ok")
            return
        if segments[:2] == ["openapi", "v3"]:
            self._openapi("/".join(segments[2:]))
            return
        if segments == ["version"]:
            self._send_json(200, discovery.VERSION_INFO)
            return
        if segments == ["api"]:
            host, port = self.server.server_address[:2]
            address = f"{host!s}:{port}"
            self._send_json(200, discovery.api_versions(address))
            return
        if segments == ["apis"]:
            self._send_json(200, discovery.group_list(registry))
            return
        if len(segments) == 2 and segments[0] == "apis":
            found = discovery.group(registry, segments[1])
            if found is None:
                raise _not_found()
            self._send_json(200, found)
            return
        if len(segments) >= 2 and segments[0] == "api":
            group, version, rest = "", segments[1], segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise _not_found()
        if version not in registry.groups().get(group, ()):
            raise _not_found()
        if not rest:
            gv = f"{group}/{version}" if group else version
            self._send_json(200, discovery.resource_list(registry.kinds_in(group, version), gv))
            return
        route = self._route(group, version, rest)
        getattr(self, f"_{self.command.lower()}")(route, query, raw)

    def _openapi(self, relative: str) -> None:
        registry = self.server.cluster.registry
        found = openapi.root(registry) if not relative else openapi.document(registry, relative)
        if found is None:
            raise _not_found()
        self._send_json(200, found)

    def _route(self, group: str, version: str, rest: list[str]) -> Route:
        registry = self.server.cluster.registry
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            inner = registry.lookup(group, version, rest[2])
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _not_found()
        kind = registry.lookup(group, version, rest[0])
        if kind is None:
            raise _not_found()
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and (subresource != "status" or not kind.status_subresource):
            raise _not_found()
        if kind.namespaced and namespace is None and name:
            raise _not_found()
        return Route(kind, namespace, name, subresource)

    # ------------------------------------------------------------------------- verbs

    def _get(self, route: Route, query: dict[str, str], raw: bytes) -> None:
        cluster = self.server.cluster
        table_version = _table_version(self.headers.get("Accept", ""))
        include = query.get("includeObject", "Metadata")
        if query.get("watch") in ("true", "1"):
            self._watch(route, query, table_version, include)
            return
        if route.name:
            obj = cluster.get(route.kind, route.namespace, route.name)
            if table_version:
                obj = table(route.kind, [obj], table_version, include)
            self._send_json(200, obj)
            return
        exact = None
        if query.get("resourceVersionMatch") == "Exact":
            exact = self._revision(query.get("resourceVersion", ""))
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise bad_request(f"limit: invalid value {query['limit']!r}") from None
        listed = cluster.list_objects(
            route.kind,
            route.namespace,
            *self._selectors(route, query),
            limit=limit,
            continue_token=query.get("continue", ""),
            exact_revision=exact,
        )
        if table_version:
            listed = table(route.kind, listed["items"], table_version, include, listed["metadata"])
        self._send_json(200, listed)

    def _post(self, route: Route, query: dict[str, str], raw: bytes) -> None:
        if route.name or (route.kind.namespaced and route.namespace is None):
            raise ApiError(405, f"POST is not supported on {self.path}")
        created = self.server.cluster.create(route.kind, route.namespace, self._json(raw))
        self._send_json(201, created)

    def _put(self, route: Route, query: dict[str, str], raw: bytes) -> None:
        if not route.name:
            raise ApiError(405, f"PUT is not supported on {self.path}")
        updated = self.server.cluster.update(
            route.kind, route.namespace, route.name, self._json(raw), route.subresource
        )
        self._send_json(200, updated)

    def _patch(self, route: Route, query: dict[str, str], raw: bytes) -> None:
        if not route.name:
            raise ApiError(405, f"PATCH is not supported on {self.path}")
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        patched = self.server.cluster.patch(
            route.kind,
            route.namespace,
            route.name,
            content_type,
            self._json(raw),
            route.subresource,
        )
        self._send_json(200, patched)

    def _delete(self, route: Route, query: dict[str, str], raw: bytes) -> None:
        if not route.name or route.subresource:
            raise ApiError(405, f"DELETE is not supported on {self.path}")
        options = self._json(raw, required=False)
        result = self.server.cluster.delete(route.kind, route.namespace, route.name, options)
        self._send_json(200, result)

    # ------------------------------------------------------------------------- queries

    @staticmethod
    def _revision(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise bad_request(f"invalid resourceVersion {text!r}") from None

    @staticmethod
    def _selectors(route: Route, query: dict[str, str]) -> tuple[LabelSelector, FieldSelector]:
        fields = query.get("fieldSelector", "")
        if route.name:  # the legacy watch of one object by its URL
            fields = ",".join(f for f in (fields, f"metadata.name={route.name}") if f)
        try:
            return (
                LabelSelector.parse(query.get("labelSelector", "")),
                FieldSelector.parse(fields, route.kind.field_labels),
            )
        except SelectorError as exc:
            raise bad_request(str(exc)) from None

    # ------------------------------------------------------------------------- watch

    def _watch(
        self, route: Route, query: dict[str, str], table_version: str | None, include: str
    ) -> None:
        cluster = self.server.cluster
        kind = route.kind
        labels, fields = self._selectors(route, query)
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        except ValueError:
            raise bad_request("timeoutSeconds must be a number") from None
        requested = query.get("resourceVersion", "")
        initial_events = query.get("sendInitialEvents") == "true"
        with cluster.store.lock:
            initial: list[dict[str, Any]] = []
            if requested in ("", "0") or initial_events:
                listed = cluster.list_objects(kind, route.namespace, labels, fields)
                initial, cursor = listed["items"], int(listed["metadata"]["resourceVersion"])
            else:
                cursor = self._revision(requested)

        def matches(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            meta = obj["metadata"]
            in_scope = route.namespace is None or meta.get("namespace") == route.namespace
            return in_scope and labels.matches(obj) and fields.matches(obj)

        def shown(obj: dict[str, Any]) -> dict[str, Any]:
            obj = cluster.present(kind, obj)
            return table(kind, [obj], table_version, include) if table_version else obj

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._record(200)
        for obj in initial:
            self._event("ADDED", shown(obj))
        if initial_events:
            self._bookmark(kind, cursor, initial_end=True)
        deadline = time.monotonic() + timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                changes, cursor = cluster.store.changes_after(cursor, min(remaining, _POLL_SECONDS))
                for change in changes:
                    if change.key[:2] == kind.resource:
                        event = self._translate(change, matches)
                        if event is not None:
                            self._event(event, shown(change.obj))
            if query.get("allowWatchBookmarks") == "true":
                self._bookmark(kind, cursor, initial_end=False)
        except ApiError as exc:  # the history no longer reaches back: 410 as an ERROR event
            self._event("ERROR", exc.status())
        except StoreClosed:  # the server stops: its sockets are being shut
            self.close_connection = True
            return
        # The stream is complete: like the real server, keep the connection for the next request.
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    @staticmethod
    def _translate(change: Change, matches: Any) -> str | None:
        """An event as seen through the selectors: an object leaving the selection is DELETED
        for this watch, one entering it ADDED."""
        before, after = matches(change.old), matches(change.obj)
        if change.type == "DELETED":
            return "DELETED" if before else None
        if before and after:
            return "MODIFIED"
        if after:
            return "ADDED"
        return "DELETED" if before else None

    def _event(self, event_type: str, obj: dict[str, Any]) -> None:
        data = json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _bookmark(self, kind: Kind, revision: int, initial_end: bool) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._event(
            "BOOKMARK", {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata}
        )
