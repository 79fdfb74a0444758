"""Leader election on a coordination.k8s.io/v1 Lease, such that a leader stops acting before
anyone else can take the lease.

Written here rather than taken from `kubernetes.leaderelection`, which exits the process on
bad settings, uses the default client, and keeps its leader working after the lease is lost.

Timing (client-go's scheme, on each process' monotonic clock): a follower takes the lease
only when its record has not changed for `duration` seconds since it first saw that record.
The leader counts from *before* each renewal request: it may act until `renew_deadline`
after the start of its last successful renewal, and `renew_deadline < duration`, so it stops
(`leading()` turns False, `fence()` raises) before any follower's wait can be over. Every
write of the controller calls `fence()` first; `on_stopped` then stops the work itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.k8s.api import NOT_FOUND, api_reason
from rollout.state import StateConflict

log = logging.getLogger(__name__)


class LeaseLost(StateConflict):
    """This process does not hold the lease (any more): it must not write. A StateConflict,
    so the reconciler drops what it holds in memory and reloads when it leads again."""


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str = "rollout-controller"
    identity: str = ""
    duration: int = 15  # seconds a follower waits on an unchanged record before taking it
    renew_deadline: float = 10.0  # the leader stops acting this long after its last renewal
    retry_period: float = 2.0  # between attempts to acquire or renew

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "lease timings must satisfy 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period:g}s, {self.renew_deadline:g}s, {self.duration}s): a "
                "leader must stop acting before a follower may take over"
            )
        if not self.identity:
            object.__setattr__(self, "identity", default_identity())


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        settings: LeaseSettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.settings = settings
        self.monotonic = monotonic
        self._valid_until = -1.0
        self._observed_version: str | None = None
        self._observed_at = 0.0
        self._mutex = threading.Lock()

    @property
    def identity(self) -> str:
        return self.settings.identity

    def leading(self) -> bool:
        with self._mutex:
            return self.monotonic() < self._valid_until

    def fence(self) -> None:
        """Raise LeaseLost unless this process may write now."""
        if not self.leading():
            raise LeaseLost(f"{self.identity} does not hold lease {self.settings.name}")

    def run(
        self,
        stop: threading.Event,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
    ) -> None:
        """Acquire, lead (renewing) until the lease is lost or `stop` is set, repeat; on stop
        the work is stopped first, then the lease released so a follower need not wait."""
        period = self.settings.retry_period
        while not stop.is_set():
            if not self.try_acquire_or_renew():
                stop.wait(period)
                continue
            log.info("%s leads (lease %s)", self.identity, self.settings.name)
            on_started()
            try:
                while not stop.wait(period):
                    self.try_acquire_or_renew()
                    if not self.leading():
                        log.warning("%s lost lease %s", self.identity, self.settings.name)
                        break
            finally:
                with self._mutex:
                    still = self.monotonic() < self._valid_until
                    if stop.is_set():
                        self._valid_until = -1.0  # stop acting now: we are shutting down
                on_stopped()
            if stop.is_set() and still:
                self.release()

    # ------------------------------------------------------------------ the Lease

    def try_acquire_or_renew(self) -> bool:
        started = self.monotonic()
        s = self.settings
        try:
            lease = self.api.read_namespaced_lease(s.name, s.namespace, _request_timeout=5)
        except ApiException as exc:
            if exc.status != NOT_FOUND:
                log.warning("lease %s: %s", s.name, api_reason(exc))
                return False
            return self._create(started)
        except Exception as exc:  # the API unreachable: not leading, try again later
            log.warning("lease %s: %s", s.name, exc)
            return False
        spec = lease.spec or client.V1LeaseSpec()
        version = lease.metadata.resource_version if lease.metadata is not None else None
        if version != self._observed_version:
            self._observed_version, self._observed_at = version, started
        holder = spec.holder_identity or ""
        held_for = float(spec.lease_duration_seconds or s.duration)
        if holder and holder != s.identity and started < self._observed_at + held_for:
            return False
        renewing = holder == s.identity
        body: dict[str, Any] = {
            "metadata": {
                "name": s.name,
                "namespace": s.namespace,
                "resourceVersion": version,
            },
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": s.duration,
                "renewTime": _now_text(),
                "acquireTime": (
                    spec.acquire_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    if renewing and spec.acquire_time is not None
                    else _now_text()
                ),
                "leaseTransitions": (spec.lease_transitions or 0) + (0 if renewing else 1),
            },
        }
        return self._write(started, body, replace=True)

    def _create(self, started: float) -> bool:
        s = self.settings
        body = {
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": s.duration,
                "acquireTime": _now_text(),
                "renewTime": _now_text(),
                "leaseTransitions": 0,
            },
        }
        return self._write(started, body, replace=False)

    def _write(self, started: float, body: dict[str, Any], *, replace: bool) -> bool:
        s = self.settings
        lease = client.V1Lease.from_dict(body)
        assert lease is not None
        try:
            if replace:
                written = self.api.replace_namespaced_lease(
                    s.name, s.namespace, lease, _request_timeout=5
                )
            else:
                written = self.api.create_namespaced_lease(s.namespace, lease, _request_timeout=5)
        except ApiException as exc:
            if exc.status not in (409,):
                log.warning("lease %s: %s", s.name, api_reason(exc))
            return False
        except Exception as exc:
            log.warning("lease %s: %s", s.name, exc)
            return False
        with self._mutex:
            self._valid_until = started + s.renew_deadline
            meta = written.metadata
            self._observed_version = meta.resource_version if meta is not None else None
            self._observed_at = started
        return True

    def release(self) -> None:
        """Give the lease up (an empty holder) so a follower takes it at once."""
        s = self.settings
        try:
            lease = self.api.read_namespaced_lease(s.name, s.namespace, _request_timeout=5)
            if lease.spec is None or lease.spec.holder_identity != s.identity:
                return
            version = lease.metadata.resource_version if lease.metadata is not None else None
            body = {
                "metadata": {
                    "name": s.name,
                    "namespace": s.namespace,
                    "resourceVersion": version,
                },
                "spec": {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": _now_text(),
                    "leaseTransitions": lease.spec.lease_transitions or 0,
                },
            }
            released = client.V1Lease.from_dict(body)
            assert released is not None
            self.api.replace_namespaced_lease(s.name, s.namespace, released, _request_timeout=5)
        except Exception as exc:  # the lease then expires by itself
            log.warning("lease %s not released: %s", s.name, exc)
