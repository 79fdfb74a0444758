"""Objects, the global resourceVersion and the bounded history of changes watches read.

Like etcd behind the API server: one revision counter for every kind, bumped by each real
change; a watch or a paginated list can start from any revision still in the history, and gets
410 Expired for one older than the history kept (the etcd compaction)."""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.support.fake_kube.errors import expired

# (group, plural, namespace, name); namespace is "" for cluster-scoped kinds.
ObjectKey = tuple[str, str, str, str]
Object = dict[str, Any]


@dataclass(frozen=True)
class Change:
    revision: int
    type: str  # ADDED, MODIFIED or DELETED
    key: ObjectKey
    obj: Object  # the new state; for DELETED the last state, at the deletion's revision
    old: Object | None  # the state before (None for ADDED)


class StoreClosed(Exception):
    """The server is stopping: watches end."""


class Store:
    def __init__(self, history_limit: int = 1000) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._objects: dict[ObjectKey, Object] = {}
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._revision = 1
        self._compacted = 1  # changes at or before this revision are gone from the history
        self._closed = False

    @property
    def revision(self) -> int:
        with self.lock:
            return self._revision

    def get(self, key: ObjectKey) -> Object | None:
        with self.lock:
            found = self._objects.get(key)
            return copy.deepcopy(found) if found is not None else None

    def items(self, group: str, plural: str, namespace: str | None = None) -> list[Object]:
        """Current objects of a resource, in key order, optionally of one namespace."""
        with self.lock:
            return self._select(self._objects, group, plural, namespace)

    @staticmethod
    def _select(
        objects: dict[ObjectKey, Object], group: str, plural: str, namespace: str | None
    ) -> list[Object]:
        return [
            copy.deepcopy(obj)
            for key, obj in sorted(objects.items())
            if key[:2] == (group, plural) and (namespace is None or key[2] == namespace)
        ]

    def put(self, key: ObjectKey, obj: Object) -> Object:
        """Store a created or changed object at the next revision."""
        with self.lock:
            old = self._objects.get(key)
            stored = self._stamp(obj)
            self._objects[key] = stored
            self._record("MODIFIED" if old is not None else "ADDED", key, stored, old)
            return copy.deepcopy(stored)

    def remove(self, key: ObjectKey) -> Object:
        with self.lock:
            old = self._objects.pop(key)
            last = self._stamp(old)
            self._record("DELETED", key, last, old)
            return copy.deepcopy(last)

    def _stamp(self, obj: Object) -> Object:
        self._revision += 1
        stamped = copy.deepcopy(obj)
        stamped.setdefault("metadata", {})["resourceVersion"] = str(self._revision)
        return stamped

    def _record(self, kind: str, key: ObjectKey, obj: Object, old: Object | None) -> None:
        self._history.append(Change(self._revision, kind, key, obj, old))
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().revision
        self._changed.notify_all()

    def _check_kept(self, revision: int) -> None:
        if revision < self._compacted:
            raise expired(f"too old resource version: {revision} ({self._compacted + 1})")

    def changes_after(self, revision: int, wait: float) -> tuple[list[Change], int]:
        """Changes after `revision`, waiting up to `wait` seconds for one; and the revision to
        continue from. 410 Expired when the history no longer reaches back to `revision`."""
        with self.lock:
            deadline = time.monotonic() + wait
            while True:
                if self._closed:
                    raise StoreClosed
                self._check_kept(revision)
                if self._revision > revision:
                    found = [c for c in self._history if c.revision > revision]
                    return found, self._revision
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], revision
                self._changed.wait(remaining)

    def snapshot(self, group: str, plural: str, namespace: str | None, at: int) -> list[Object]:
        """The objects as they were at revision `at`, rebuilt by undoing later changes."""
        with self.lock:
            self._check_kept(at)
            objects = dict(self._objects)
            for change in reversed(self._history):
                if change.revision <= at:
                    break
                if change.old is None:
                    objects.pop(change.key, None)
                else:
                    objects[change.key] = change.old
            return self._select(objects, group, plural, namespace)

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._changed.notify_all()

    def reopen(self) -> None:
        with self.lock:
            self._closed = False
