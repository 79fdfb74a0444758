"""`StateStore` on ModelRollouts: the state lives in the resource's `status`.

Keys are `<namespace>/<name>`; a `Version` is the resource's resourceVersion. `save` PUTs the
whole status (the summary people read and the full state) at the resourceVersion it was
loaded at: a 409 is `StateConflict`, and nothing changed. Besides the state, the status shows
a per-key `Context` (the generation acted on, the spec's problems, the answer to the last
request) that the controller sets; it is written with the next save, in the same write.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from rollout.k8s.api import CONFLICT, NOT_FOUND, Object, RolloutApi, api_reason, split_key
from rollout.k8s.status import Context, RequestStatus, build_status, state_of
from rollout.state import RolloutState, StateConflict, StateError, Version

Fence = Callable[[], None]  # raises (LeaseLost) when this process may not write now


class RolloutGone(StateError):
    """The ModelRollout was deleted."""


@dataclass
class _Known:
    resource_version: str
    status: Mapping[str, Any]
    state: RolloutState | None


def _no_fence() -> None:
    return None


class StatusStore:
    """Rollout states in ModelRollouts' status, written conditionally on resourceVersion."""

    def __init__(
        self,
        api: RolloutApi,
        clock: Callable[[], float],
        fence: Fence = _no_fence,
        writer: str = "",
    ) -> None:
        self.api = api
        self.clock = clock
        self.fence = fence
        self.writer = writer
        self.writes = 0  # status writes that reached the API (for operators and tests)
        self._known: dict[str, _Known] = {}
        self._contexts: dict[str, Context] = {}
        self._mutex = threading.Lock()

    # ------------------------------------------------------------------ StateStore

    def load(self, key: str) -> tuple[RolloutState, Version] | None:
        obj = self._get(key)
        known = self._remember(key, obj)
        return None if known.state is None else (known.state, known.resource_version)

    def save(self, key: str, state: RolloutState, expected_version: Version | None) -> Version:
        with self._mutex:
            known = self._known.get(key)
        if expected_version is None:
            if known is None or known.state is not None:
                raise StateConflict(f"{key}: a state was saved since this rollout was loaded")
            expected_version = known.resource_version
        status = self._status(key, state, known.status if known is not None else {})
        if (
            known is not None
            and known.resource_version == expected_version
            and dict(known.status) == status
        ):
            return expected_version
        return self._write(key, expected_version, status, state)

    # ------------------------------------------------------------------ context

    def context(self, key: str) -> Context:
        with self._mutex:
            return self._contexts.get(key, Context())

    def set_context(self, key: str, **changes: Any) -> Context:
        with self._mutex:
            updated = dataclasses.replace(self._contexts.get(key, Context()), **changes)
            self._contexts[key] = updated
            return updated

    def forget(self, key: str) -> None:
        with self._mutex:
            self._known.pop(key, None)
            self._contexts.pop(key, None)

    def known(self, key: str) -> tuple[str, Mapping[str, Any], RolloutState | None] | None:
        """The resourceVersion, status and state last read or written here."""
        with self._mutex:
            known = self._known.get(key)
        return None if known is None else (known.resource_version, known.status, known.state)

    def write_context(self, key: str, attempts: int = 5) -> None:
        """Write the context with the saved state as it is (re-read on a conflict): for a
        refused spec, a refused request, evidence, an error; no state change."""
        for attempt in range(attempts):
            with self._mutex:
                known = self._known.get(key)
            if known is None:
                self.load(key)
                continue
            status = self._status(key, known.state, known.status)
            if dict(known.status) == status:
                return
            try:
                self._write(key, known.resource_version, status, known.state)
                return
            except StateConflict:
                if attempt == attempts - 1:
                    raise
                self.load(key)

    # ------------------------------------------------------------------ internals

    def _status(
        self, key: str, state: RolloutState | None, previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        status = build_status(state, self.context(key), previous, self.clock())
        if self.writer:
            status["writer"] = self.writer
        return status

    def _get(self, key: str) -> Object:
        namespace, name = split_key(key)
        try:
            return self.api.get(namespace, name)
        except ApiException as exc:
            if exc.status == NOT_FOUND:
                raise RolloutGone(f"ModelRollout {key} is gone") from None
            raise

    def _remember(self, key: str, obj: Object) -> _Known:
        status = obj.get("status") or {}
        state = state_of(status, f"ModelRollout {key}")
        known = _Known(str(obj["metadata"]["resourceVersion"]), status, state)
        request = status.get("request")
        with self._mutex:
            self._known[key] = known
            # What the resource says it answered and showed is the truth after a (re)load.
            context = self._contexts.get(key, Context())
            self._contexts[key] = dataclasses.replace(
                context,
                request=RequestStatus.model_validate(request) if request else None,
                trace_ids=tuple(str(t) for t in status.get("traceIds") or ()),
            )
        return known

    def _write(
        self, key: str, version: str, status: dict[str, Any], state: RolloutState | None
    ) -> Version:
        self.fence()
        namespace, name = split_key(key)
        try:
            written = self.api.replace_status(namespace, name, version, status)
        except ApiException as exc:
            if exc.status == CONFLICT:
                raise StateConflict(f"ModelRollout {key}: {api_reason(exc)}") from None
            if exc.status == NOT_FOUND:
                raise RolloutGone(f"ModelRollout {key} is gone") from None
            raise
        self.writes += 1
        rv = str(written["metadata"]["resourceVersion"])
        with self._mutex:
            self._known[key] = _Known(rv, written.get("status") or status, state)
        return rv
