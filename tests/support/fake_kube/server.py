"""`FakeApiServer`: the fake Kubernetes API server on a thread, bound to 127.0.0.1."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import yaml
from kubernetes import client

from tests.support.fake_kube.cluster import Cluster
from tests.support.fake_kube.handler import ApiHttpServer, Faults, RecordedRequest, RequestLog
from tests.support.fake_kube.kinds import Kind, Registry
from tests.support.fake_kube.store import Store


class FakeApiServer:
    """An in-process Kubernetes API server for tests, driven only over HTTP (the official
    client, kubectl). `history_limit` is how many changes watches can replay: a watch or a
    continued list from further back gets 410 Expired. `stop()` then `start()` is an API
    server restart: the same port and objects, open connections and watches cut."""

    def __init__(self, history_limit: int = 1000) -> None:
        self._store = Store(history_limit)
        self._registry = Registry()
        self._cluster = Cluster(self._store, self._registry)
        self._faults = Faults()
        self._log = RequestLog()
        self._port = 0
        self._http: ApiHttpServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeApiServer:
        if self._http is not None:
            raise RuntimeError("the fake API server is already running")
        self._store.reopen()
        self._http = ApiHttpServer(self._cluster, self._faults, self._log, self._port)
        self._port = int(self._http.server_address[1])
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="fake-kube-apiserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None or self._thread is None:
            return
        self._store.close()
        self._http.shutdown()
        self._http.close_connections()
        self._http.server_close()
        self._thread.join(timeout=10)
        self._http = None
        self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------- clients

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the fake API server is not running: call start() first")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for `kubernetes.config.load_kube_config` and `kubectl --kubeconfig`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": "default"},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    # ------------------------------------------------------------------------- test controls

    def fail_next(self, method: str, path_regex: str, status: int, times: int = 1) -> None:
        """Answer the next `times` requests of `method` whose URL path matches `path_regex`
        (re.search) with `status` and a Status body, instead of serving them."""
        self._faults.add(method, path_regex, status, times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """(method, URL path, status) of every request answered so far, oldest first."""
        return self._log.snapshot()

    def serve_kind(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        namespaced: bool = True,
        status_subresource: bool = False,
    ) -> None:
        """Serve another built-in-like kind (e.g. gateway.networking.k8s.io HTTPRoute)."""
        self._registry.add(
            Kind(
                group=group,
                version=version,
                plural=plural,
                kind=kind,
                namespaced=namespaced,
                status_subresource=status_subresource,
                singular=kind.lower(),
            )
        )
