"""An in-process fake Kubernetes API server for tests (no API server runs on these machines).

It keeps the semantics clients rely on: discovery, resourceVersion and generation, 409 on a
stale write, merge / JSON / strategic merge patch, the status subresource, finalizers, watch
from a resourceVersion with 410 Expired, selectors, server-side Tables for kubectl. Tests drive
it only over HTTP, with the official `kubernetes` client and kubectl."""

from tests.support.fake_kube.handler import RecordedRequest
from tests.support.fake_kube.server import FakeApiServer

__all__ = ["FakeApiServer", "RecordedRequest"]
