"""The Kubernetes API as the controller and the verbs use it: the official client, ModelRollout
objects as plain dicts (camelCase, as on the wire), and every write conditional on the
resourceVersion it read (409 Conflict when someone wrote since).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client
from kubernetes import config as _config
from kubernetes import watch as _watch
from kubernetes.client.exceptions import ApiException

from rollout.k8s.crd import GROUP, KIND, PLURAL, VERSION

API_VERSION: Final = f"{GROUP}/{VERSION}"
FINALIZER: Final = f"{GROUP}/traffic-left-as-is"
REQUEST_ANNOTATION: Final = f"{GROUP}/request"
CONFLICT: Final = 409
NOT_FOUND: Final = 404
GONE: Final = 410
Object = dict[str, Any]
# Parts of the client without annotations, used as such.
config: Any = _config
watch: Any = _watch


def _object(found: object) -> Object:
    if not isinstance(found, dict):
        raise TypeError(f"the API answered {type(found).__name__}, not an object")
    return found


class KubeConfigError(Exception):
    """No usable kubeconfig or in-cluster service account."""


def connect(kubeconfig: Path | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient from `kubeconfig` (else $KUBECONFIG or ~/.kube/config), or in-cluster."""
    path = kubeconfig or _default_kubeconfig()
    try:
        if path is not None:
            made: client.ApiClient = config.new_client_from_config(
                config_file=str(path), context=context
            )
            return made
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except (config.ConfigException, OSError, ValueError) as exc:
        where = str(path) if path is not None else "in-cluster service account"
        raise KubeConfigError(
            f"cannot use {where}: {exc}; give --kubeconfig FILE or run inside the cluster"
        ) from None


def _default_kubeconfig() -> Path | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    home = Path.home() / ".kube" / "config"
    if home.is_file():
        return home
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None  # in a pod: its service account
    return home  # named in the error when it is missing


def key_of(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def api_reason(exc: ApiException) -> str:
    """The API's own message (not its headers: they may carry tokens)."""
    try:
        body = json.loads(exc.body or "")
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"{exc.status} {exc.reason or ''}".strip() + (f": {message}" if message else "")


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    obj: Object


class RolloutApi:
    """ModelRollouts, their Events, through one ApiClient."""

    def __init__(self, api_client: client.ApiClient, request_timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.timeout = request_timeout

    def get(self, namespace: str, name: str) -> Object:
        return _object(
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout
            )
        )

    def list_all(self, namespace: str | None) -> tuple[list[Object], str]:
        """Every ModelRollout (in `namespace`, or all) and the list's resourceVersion."""
        if namespace is None:
            listed = self.custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=self.timeout
            )
        else:
            listed = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=self.timeout
            )
        found = _object(listed)
        return list(found.get("items", [])), str(found["metadata"]["resourceVersion"])

    def watch(
        self, namespace: str | None, resource_version: str, seconds: int
    ) -> tuple[Any, Iterator[WatchEvent]]:
        """Changes after `resource_version`, for at most `seconds`; ApiException(410) when
        that version is too old. The Watch is returned so another thread can stop it."""
        watcher = watch.Watch()
        kwargs: dict[str, Any] = {
            "resource_version": resource_version,
            "timeout_seconds": seconds,
            "allow_watch_bookmarks": True,
            "_request_timeout": seconds + self.timeout,
        }
        if namespace is None:
            stream = watcher.stream(
                self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, **kwargs
            )
        else:
            stream = watcher.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                **kwargs,
            )

        def events() -> Iterator[WatchEvent]:
            for event in stream:
                yield WatchEvent(str(event["type"]), dict(event["raw_object"]))

        return watcher, events()

    def replace(self, obj: Mapping[str, Any]) -> Object:
        """PUT the object (its metadata and spec) at its resourceVersion; 409 when stale."""
        meta = obj["metadata"]
        return _object(
            self.custom.replace_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], dict(obj),
                _request_timeout=self.timeout,
            )
        )  # fmt: skip

    def replace_status(
        self, namespace: str, name: str, resource_version: str, status: Mapping[str, Any]
    ) -> Object:
        """PUT /status at `resource_version`: only the status changes; 409 when stale."""
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "status": dict(status),
        }
        return _object(
            self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body, _request_timeout=self.timeout
            )
        )

    def merge_patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Object:
        return _object(
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, dict(patch),
                _content_type="application/merge-patch+json", _request_timeout=self.timeout,
            )
        )  # fmt: skip

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        body = client.CoreV1Event.from_dict(dict(event))
        assert body is not None
        self.core.create_namespaced_event(namespace, body, _request_timeout=self.timeout)

    def list_events(self, namespace: str, name: str) -> list[Object]:
        """Events about the ModelRollout `name`, oldest first."""
        found = self.core.list_namespaced_event(namespace, _request_timeout=self.timeout)
        serializer: Any = self.api_client
        events: list[Object] = serializer.sanitize_for_serialization(found).get("items", [])
        return [
            e
            for e in events
            if e.get("involvedObject", {}).get("kind") == KIND
            and e.get("involvedObject", {}).get("name") == name
        ]
