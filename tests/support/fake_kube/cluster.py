"""The API server's object semantics over the store: metadata the server owns, generation,
optimistic concurrency, the status subresource, finalizers, namespaces and CRDs."""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.fake_kube import errors, schema
from tests.support.fake_kube.errors import ApiError, bad_request
from tests.support.fake_kube.kinds import Kind, Registry, kinds_from_crd
from tests.support.fake_kube.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from tests.support.fake_kube.selectors import FieldSelector, LabelSelector
from tests.support.fake_kube.store import Object, ObjectKey, Store

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The characters Kubernetes' generateName suffixes use (no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Set by the server alone: a client's values are ignored on update.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_NAMESPACES = ("", "namespaces")
_CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter."
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: Object) -> dict[str, Any]:
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    return meta


class Cluster:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        with store.lock:
            for name in ("default", "kube-system", "kube-public"):
                self._put_new(self._namespace_kind(), "", {"metadata": {"name": name}})

    def _namespace_kind(self) -> Kind:
        found = self.registry.lookup("", "v1", "namespaces")
        assert found is not None
        return found

    @staticmethod
    def key(kind: Kind, namespace: str | None, name: str) -> ObjectKey:
        return (kind.group, kind.plural, namespace or "", name)

    @staticmethod
    def present(kind: Kind, obj: Object) -> Object:
        """The object as served at this kind's version."""
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        return obj

    # ------------------------------------------------------------------------- reads

    def get(self, kind: Kind, namespace: str | None, name: str) -> Object:
        found = self.store.get(self.key(kind, namespace, name))
        if found is None:
            raise errors.not_found(kind.plural, kind.group, name)
        return self.present(kind, found)

    def list_objects(
        self,
        kind: Kind,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int = 0,
        continue_token: str = "",
        exact_revision: int | None = None,
    ) -> Object:
        with self.store.lock:
            after: tuple[str, str] = ("", "")
            if continue_token:
                revision, after = self._decode_continue(continue_token)
                try:
                    objects = self.store.snapshot(kind.group, kind.plural, namespace, revision)
                except ApiError:
                    raise errors.expired(_EXPIRED_CONTINUE) from None
            elif exact_revision is not None:
                revision = exact_revision
                objects = self.store.snapshot(kind.group, kind.plural, namespace, revision)
            else:
                revision = self.store.revision
                objects = self.store.items(kind.group, kind.plural, namespace)
        matching = [
            self.present(kind, obj)
            for obj in objects
            if labels.matches(obj) and fields.matches(obj) and self._position(obj) > after
        ]
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if 0 < limit < len(matching):
            metadata["continue"] = self._encode_continue(revision, matching[limit - 1])
            metadata["remainingItemCount"] = len(matching) - limit
            matching = matching[:limit]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": metadata,
            "items": matching,
        }

    @staticmethod
    def _position(obj: Object) -> tuple[str, str]:
        """Where an object is in list order (the store's key order)."""
        meta = obj["metadata"]
        return (meta.get("namespace", ""), meta["name"])

    def _encode_continue(self, revision: int, last: Object) -> str:
        raw = json.dumps({"rv": revision, "start": self._position(last)})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            namespace, name = data["start"]
            return int(data["rv"]), (str(namespace), str(name))
        except (ValueError, KeyError, TypeError):
            raise bad_request(f"invalid continue token {token!r}") from None

    # ------------------------------------------------------------------------- create

    def create(self, kind: Kind, namespace: str | None, body: Any) -> Object:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_type(kind, obj)
        meta = _meta(obj)
        self._check_namespace_field(kind, namespace, meta)
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created")
        with self.store.lock:
            if kind.namespaced:
                self._check_namespace_open(namespace or "")
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generated_name(kind, namespace, meta["generateName"])
            name = meta.get("name") or ""
            self._validate_name(kind, name)
            key = self.key(kind, namespace, name)
            if self.store.get(key) is not None:
                raise errors.already_exists(kind.plural, kind.group, name)
            if kind.status_subresource:
                obj.pop("status", None)
            return self.present(
                kind, self._put_new(kind, namespace or "", self._conform(kind, obj))
            )

    def _put_new(self, kind: Kind, namespace: str, obj: Object) -> Object:
        meta = _meta(obj)
        for field in (*_SERVER_METADATA, "selfLink", "managedFields"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if kind.namespaced:
            meta["namespace"] = namespace
        if kind.resource == _NAMESPACES:
            obj["status"] = {"phase": "Active"}
        if kind.resource == _CRDS:
            self._register_crd(obj)
        return self.store.put(self.key(kind, namespace, meta["name"]), self.present(kind, obj))

    def _generated_name(self, kind: Kind, namespace: str | None, prefix: str) -> str:
        for _ in range(100):
            name = prefix + "".join(random.choices(_SUFFIX_ALPHABET, k=5))
            if self.store.get(self.key(kind, namespace, name)) is None:
                return name
        raise errors.already_exists(kind.plural, kind.group, prefix)

    @staticmethod
    def _check_type(kind: Kind, obj: Object) -> None:
        api_version, type_name = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, kind.api_version) or type_name not in (None, kind.kind):
            raise bad_request(
                f"the API version in the data ({api_version}) or kind ({type_name}) does not "
                f"match the expected {kind.api_version} {kind.kind}"
            )

    @staticmethod
    def _check_namespace_field(kind: Kind, namespace: str | None, meta: dict[str, Any]) -> None:
        given = meta.get("namespace")
        if kind.namespaced and given and given != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )

    def _check_namespace_open(self, namespace: str) -> None:
        found = self.store.get(("", "namespaces", "", namespace))
        if found is None:
            raise errors.not_found("namespaces", "", namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    @staticmethod
    def _validate_name(kind: Kind, name: str) -> None:
        if not name:
            raise errors.invalid(
                kind.kind,
                kind.group,
                name,
                "metadata.name",
                "Required value: name or generateName is required",
            )
        if len(name) > 253 or not _SUBDOMAIN.match(name):
            raise errors.invalid(
                kind.kind,
                kind.group,
                name,
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )

    # ------------------------------------------------------------------------- update, patch

    def update(
        self, kind: Kind, namespace: str | None, name: str, body: Any, subresource: str = ""
    ) -> Object:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        with self.store.lock:
            old = self.get(kind, namespace, name)
            given = _meta(body).get("resourceVersion")
            if not given and kind.custom:
                raise errors.invalid(
                    kind.kind,
                    kind.group,
                    name,
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
            return self._write(kind, old, copy.deepcopy(body), subresource)

    def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str = "",
    ) -> Object:
        if content_type == STRATEGIC_MERGE_PATCH and kind.custom:
            raise self._unsupported_patch(kind, content_type)
        with self.store.lock:
            old = self.get(kind, namespace, name)
            if content_type == MERGE_PATCH:
                patched = merge_patch(old, patch)
            elif content_type == JSON_PATCH:
                patched = json_patch(old, patch)
            elif content_type == STRATEGIC_MERGE_PATCH:
                patched = strategic_merge_patch(old, patch)
            else:
                raise self._unsupported_patch(kind, content_type)
            if not isinstance(patched, dict):
                raise bad_request("the patched document is not a JSON object")
            return self._write(kind, old, patched, subresource)

    @staticmethod
    def _unsupported_patch(kind: Kind, content_type: str) -> ApiError:
        """415, naming the patch types this kind takes (server-side apply is not served)."""
        accepted = [JSON_PATCH, MERGE_PATCH] + ([] if kind.custom else [STRATEGIC_MERGE_PATCH])
        return ApiError(
            415,
            f"the body of the request was in an unknown format ({content_type}) - accepted media "
            f"types include: {', '.join(accepted)}",
        )

    def _write(self, kind: Kind, old: Object, new: Object, subresource: str) -> Object:
        """Store `new` in place of `old`, keeping what the client may not change."""
        old_meta, new_meta = old["metadata"], _meta(new)
        name = old_meta["name"]
        given = new_meta.get("resourceVersion")
        if given and given != old_meta["resourceVersion"]:
            raise errors.stale(kind.plural, kind.group, name)
        if new_meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({new_meta.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        self._check_namespace_field(kind, old_meta.get("namespace"), new_meta)
        self._check_type(kind, new)
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = self._main_write(kind, old, new)
        result = self.present(kind, self._conform(kind, result))
        if self._content(kind, result) != self._content(kind, old):
            result["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        result["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if result == old:
            return old  # a no-op write: no new resourceVersion, no watch event
        key = self.key(kind, old_meta.get("namespace"), name)
        if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            last = self._remove(key)
            self._reap()
            return self.present(kind, last)
        if kind.resource == _CRDS:
            self._register_crd(result)
        return self.present(kind, self.store.put(key, result))

    @staticmethod
    def _main_write(kind: Kind, old: Object, new: Object) -> Object:
        result = copy.deepcopy(new)
        meta = _meta(result)
        old_meta = old["metadata"]
        for field in (*_SERVER_METADATA, "name", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        for field in ("selfLink", "managedFields"):
            meta.pop(field, None)
        if kind.status_subresource:
            if "status" in old:
                result["status"] = copy.deepcopy(old["status"])
            else:
                result.pop("status", None)
        added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
        if old_meta.get("deletionTimestamp") and added:
            raise errors.invalid(
                kind.kind,
                kind.group,
                old_meta["name"],
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            )
        return result

    @staticmethod
    def _conform(kind: Kind, obj: Object) -> Object:
        """A custom resource as its CRD's schema has it: pruned, defaulted, valid (else 422)."""
        if kind.schema is None:
            return obj
        pruned: Object = schema.prune(obj, kind.schema, root=True)
        problems = schema.validate(pruned, kind.schema)
        if problems:
            name = obj["metadata"].get("name", "")
            raise errors.invalid_fields(kind.kind, kind.group, name, problems)
        return pruned

    @staticmethod
    def _content(kind: Kind, obj: Object) -> Object:
        """What metadata.generation tracks: everything but metadata (and status when it is a
        subresource), i.e. the spec."""
        skipped = {"metadata", "apiVersion", "kind"} | (
            {"status"} if kind.status_subresource else set()
        )
        return {k: v for k, v in obj.items() if k not in skipped}

    # ------------------------------------------------------------------------- delete

    def delete(self, kind: Kind, namespace: str | None, name: str, options: Any) -> Object:
        """Remove the object, or mark it for deletion while finalizers (or, for a namespace or
        CRD, contents) remain. Returns the object still there, or a success Status."""
        with self.store.lock:
            old = self.get(kind, namespace, name)
            self._check_preconditions(kind, old, options)
            meta = old["metadata"]
            if meta.get("deletionTimestamp"):
                return old
            if meta.get("finalizers") or self._has_contents(kind, old):
                marked = copy.deepcopy(old)
                marked["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
                if kind.resource == _NAMESPACES:
                    marked["status"] = {"phase": "Terminating"}
                stored = self.store.put(self.key(kind, namespace, name), marked)
                self._delete_contents(kind, old)
                self._reap()
                current = self.store.get(self.key(kind, namespace, name))
                return self.present(kind, current if current is not None else stored)
            last = self._remove(self.key(kind, namespace, name))
            self._reap()
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": kind.group,
                    "kind": kind.plural,
                    "uid": last["metadata"]["uid"],
                },
            }

    @staticmethod
    def _check_preconditions(kind: Kind, obj: Object, options: Any) -> None:
        preconditions = (options or {}).get("preconditions") or {}
        meta = obj["metadata"]
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field)
            if wanted and wanted != meta[field]:
                raise errors.conflict(
                    kind.plural,
                    kind.group,
                    meta["name"],
                    f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {meta[field]}",
                )

    def _remove(self, key: ObjectKey) -> Object:
        last = self.store.remove(key)
        if key[:2] == _CRDS:
            self.registry.set_crd(key[3], [])
        return last

    def _contents(self, kind: Kind, obj: Object) -> list[tuple[Kind, Object]]:
        """What a namespace or a CRD holds (the namespace and CRD controllers' job)."""
        name = obj["metadata"]["name"]
        if kind.resource == _NAMESPACES:
            held = []
            for group, versions in self.registry.groups().items():
                for served in self.registry.kinds_in(group, versions[0]):
                    if served.namespaced:
                        held += [(served, o) for o in self.store.items(group, served.plural, name)]
            return held
        if kind.resource == _CRDS:
            crd_kinds = kinds_from_crd(obj)
            if crd_kinds:
                first = crd_kinds[0]
                return [(first, o) for o in self.store.items(first.group, first.plural)]
        return []

    def _has_contents(self, kind: Kind, obj: Object) -> bool:
        return bool(self._contents(kind, obj))

    def _delete_contents(self, kind: Kind, obj: Object) -> None:
        for held_kind, held in self._contents(kind, obj):
            meta = held["metadata"]
            if self.store.get(self.key(held_kind, meta.get("namespace"), meta["name"])):
                self.delete(held_kind, meta.get("namespace"), meta["name"], None)

    def _reap(self) -> None:
        """Remove terminating namespaces and CRDs that hold nothing any more (their
        controllers' job, done at once here)."""
        for group, plural in (_NAMESPACES, _CRDS):
            kind = self._kind_of(group, plural)
            for obj in self.store.items(group, plural):
                meta = obj["metadata"]
                key = self.key(kind, None, meta["name"])
                if (
                    meta.get("deletionTimestamp")
                    and not meta.get("finalizers")
                    and self.store.get(key) is not None
                    and not self._has_contents(kind, obj)
                ):
                    self._remove(key)

    def _kind_of(self, group: str, plural: str) -> Kind:
        for version in self.registry.groups().get(group, ()):
            found = self.registry.lookup(group, version, plural)
            if found is not None:
                return found
        raise errors.not_found(plural, group, "")

    # ------------------------------------------------------------------------- CRDs

    def _register_crd(self, crd: Object) -> None:
        """Validate a CRD the way the API server does for what matters here, set its status,
        and serve its kinds."""
        name = crd["metadata"]["name"]
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = spec.get("versions") or []

        def refuse(field: str, message: str) -> ApiError:
            return errors.invalid(
                "CustomResourceDefinition", "apiextensions.k8s.io", name, field, message
            )

        for field in ("group", "scope"):
            if not spec.get(field):
                raise refuse(f"spec.{field}", "Required value")
        for field in ("plural", "kind"):
            if not names.get(field):
                raise refuse(f"spec.names.{field}", "Required value")
        if name != f"{names['plural']}.{spec['group']}":
            raise refuse(
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        if spec["scope"] not in ("Namespaced", "Cluster"):
            raise refuse("spec.scope", f'Unsupported value: "{spec["scope"]}"')
        if sum(1 for v in versions if v.get("storage")) != 1:
            raise refuse(
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        accepted = {"plural": names["plural"], "kind": names["kind"]}
        accepted.update({k: v for k, v in names.items() if k not in accepted})
        crd["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in versions if v.get("storage")],
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "lastTransitionTime": now(),
                    "message": message,
                }
                for kind, reason, message in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        self.registry.set_crd(name, kinds_from_crd(crd))
