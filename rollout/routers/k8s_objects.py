"""Kubernetes objects as the routers read and write them.

Plain JSON over the official client, never its typed models: a field this client does not
know (a newer API version, another controller's) survives a read-modify-write. Writes are
JSON merge patches carrying the resourceVersion read, so the API server refuses (409) a
write over a change made since. Every failure is a RouterError naming the object.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from rollout.routers.base import MissingObject, RouterError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Object = dict[str, Any]
MERGE_PATCH: Final = "application/merge-patch+json"
# Object names (DNS-1123 subdomain) and namespaces, Services (DNS-1123 label).
OBJECT_NAME: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_NAME: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
REQUEST_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Resource:
    """A kind as the API serves it; `group` '' is the core group."""

    group: str
    version: str
    plural: str
    kind: str


@dataclass(frozen=True)
class ObjectRef:
    """One object, and the spec field that names it (for the messages)."""

    resource: Resource
    namespace: str
    name: str
    field: str  # e.g. spec.router.httpRoute

    def __str__(self) -> str:
        return f"{self.resource.kind} {self.namespace}/{self.name}"

    @property
    def collection(self) -> str:
        r = self.resource
        root = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
        return f"{root}/namespaces/{self.namespace}/{r.plural}"

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.name}"


class Conflict(Exception):
    """409: the object changed since it was read."""


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: changed keys only, a
    removed key as null, a changed list whole (a merge patch cannot address list items)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif old[key] != value:
            patch[key] = merge_diff(old[key], value)
    return patch


def _message(exc: Any) -> tuple[str, bool]:
    """The API's own message (never its headers: they may carry tokens), and whether the
    answer names an object (a 404 without one: the kind itself is not served)."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if not isinstance(body, dict):
        return f"{exc.status} {exc.reason or ''}".strip(), False
    named = bool((body.get("details") or {}).get("name"))
    return f"{exc.status} {body.get('message') or exc.reason or ''}".strip(), named


class KubeObjects:
    """Get, list and merge-patch objects through one ApiClient, made on first use."""

    def __init__(self, connect: Callable[[], ApiClient], rbac_hint: str) -> None:
        self._connect = connect
        self._client: ApiClient | None = None
        self.rbac_hint = rbac_hint  # which Role grants what this router needs

    def get(self, ref: ObjectRef) -> Object:
        return self._call("GET", ref, ref.path)

    def list_objects(self, ref: ObjectRef) -> list[Object]:
        """Every object of `ref`'s kind in `ref`'s namespace."""
        found = self._call("GET", ref, ref.collection)
        return list(found.get("items") or [])

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> Object:
        """Conflict (409) when the patch's metadata.resourceVersion is not the object's."""
        return self._call("PATCH", ref, ref.path, dict(patch))

    def _call(self, method: str, ref: ObjectRef, path: str, body: Object | None = None) -> Object:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        api = self._api()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = MERGE_PATCH
        try:
            serialized = api.param_serialize(
                method=method,
                resource_path=path,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response: Any = api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT)
            response.read()
            found = api.response_deserialize(response, {"200": "object", "201": "object"}).data
        except ApiException as exc:
            raise self._refused(exc, ref) from None
        except (HTTPError, OSError, ValueError) as exc:  # urllib3's, the socket's, bad JSON
            raise RouterError(
                f"{ref}: cannot reach the Kubernetes API ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(found, dict):
            raise RouterError(f"{ref}: the API answered {type(found).__name__}, not an object")
        return found

    def _refused(self, exc: Any, ref: ObjectRef) -> Exception:
        message, named = _message(exc)
        if exc.status == 409:
            return Conflict(f"{ref}: {message}")
        if exc.status == 404 and named:
            return MissingObject(
                f"{ref} not found ({ref.field}): create it, or name an existing one in "
                f"{ref.field} (and the router's namespace)",
                ref.field,
            )
        if exc.status == 404:
            r = ref.resource
            served = f"{r.group}/{r.version}" if r.group else r.version
            return RouterError(
                f"{ref}: the API server does not serve {r.plural} in {served} ({message}); is "
                f"the {r.kind} CRD installed?"
            )
        if exc.status in (401, 403):
            return RouterError(f"{ref}: {message}; {self.rbac_hint}")
        return RouterError(f"{ref}: the API answered {message}")

    def _api(self) -> ApiClient:
        if self._client is None:
            self._client = self._connect()
        return self._client
