"""Kubernetes routers' bench: the fake API server serving the routers' kinds, objects written
and read over plain HTTP (not through the code under test), and routers built as the
controller builds them."""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from rollout.routers import build_router
from rollout.routers.base import RouterPlace
from rollout.routers.k8s_objects import ObjectRef, Resource
from rollout.routers.k8s_router import KubeRouter
from rollout.spec import RouterConfig
from tests.support.fake_kube import FakeApiServer

Object = dict[str, Any]
NAMESPACE = "ml"
# On every object: what other people and controllers put there, which must survive our writes.
FOREIGN_LABELS = {"team": "search", "argocd.argoproj.io/instance": "ranker"}
FOREIGN_ANNOTATIONS = {"owner": "search-team@example.com", "other.io/checksum": "abc123"}
_SENT: Counter[str] = Counter()  # requests `Objects` sent, per API server URL


@contextmanager
def fake_api() -> Iterator[FakeApiServer]:
    """A fake API server serving the routers' custom kinds, with the rollouts' namespace."""
    with FakeApiServer() as api:
        api.serve_kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
        api.serve_kind("networking.istio.io", "v1", "virtualservices", "VirtualService")
        api.serve_kind("networking.k8s.io", "v1", "ingresses", "Ingress")
        api.serve_kind(
            "serving.kserve.io",
            "v1beta1",
            "inferenceservices",
            "InferenceService",
            status_subresource=True,
        )
        Objects(api).create(
            Resource("", "v1", "namespaces", "Namespace"),
            {"metadata": {"name": NAMESPACE}},
            namespaced=False,
        )
        yield api


def router(api: FakeApiServer, config: dict[str, Any]) -> KubeRouter:
    """The router the controller builds for a rollout in NAMESPACE with this `router` block."""
    from pydantic import TypeAdapter

    parsed = TypeAdapter(RouterConfig).validate_python(config)
    built = build_router(parsed, RouterPlace(NAMESPACE, api.api_client))
    assert isinstance(built, KubeRouter)
    return built


def with_foreign_metadata(obj: Object) -> Object:
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("namespace", NAMESPACE)
    meta["labels"] = {**FOREIGN_LABELS, **meta.get("labels", {})}
    meta["annotations"] = {**FOREIGN_ANNOTATIONS, **meta.get("annotations", {})}
    return obj


def without_server_fields(obj: Object) -> Object:
    """The object as its writers wrote it: what the server sets on every write left out."""
    obj = copy.deepcopy(obj)
    for field in ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"):
        obj["metadata"].pop(field, None)
    return obj


class Objects:
    """Someone else's reads and writes (kubectl, a GitOps tool, KServe's controller)."""

    def __init__(self, api: FakeApiServer, namespace: str = NAMESPACE) -> None:
        self.base = api.url
        self.namespace = namespace

    def _path(self, resource: Resource, name: str = "", namespaced: bool = True) -> str:
        ref = ObjectRef(resource, self.namespace, name, "")
        if not namespaced:
            root = "/apis/" + resource.group if resource.group else "/api"
            return f"{root}/{resource.version}/{resource.plural}" + (f"/{name}" if name else "")
        return ref.path if name else ref.collection

    def create(self, resource: Resource, obj: Object, namespaced: bool = True) -> Object:
        _SENT[self.base] += 1
        body = {"apiVersion": _api_version(resource), "kind": resource.kind, **obj}
        answer = httpx.post(self.base + self._path(resource, namespaced=namespaced), json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def get(self, resource: Resource, name: str) -> Object:
        _SENT[self.base] += 1
        answer = httpx.get(self.base + self._path(resource, name))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def merge_patch(
        self, resource: Resource, name: str, patch: Object, status: bool = False
    ) -> Object:
        _SENT[self.base] += 1
        path = self._path(resource, name) + ("/status" if status else "")
        answer = httpx.patch(
            self.base + path,
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def others_requests(api: FakeApiServer) -> int:
    """How many requests `Objects` sent to `api`, once the server's log holds them all (it
    logs a request after answering it); the requests logged after those are the router's."""
    sent = _SENT[api.url]
    deadline = time.monotonic() + 10
    while len(api.requests) < sent:
        assert time.monotonic() < deadline, "the fake API server did not log every request"
        time.sleep(0.01)
    return sent


def _api_version(resource: Resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version
