"""The three PATCH formats of the API server, applied to plain JSON documents."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from tests.support.fake_kube.errors import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# patchMergeKey of the list fields of the built-in kinds served here (from their Go types);
# `ports` is keyed by containerPort in a container and by port in a Service.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
}
# Lists of scalars with patchStrategy "merge": a patch adds to them instead of replacing.
_MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> Any:
    """RFC 6902. A malformed patch is a 400; one that does not apply (a failed `test`, a
    missing path) is a 422, as the API server answers."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        patch = jsonpatch.JsonPatch(operations)
        return patch.apply(target)
    except jsonpatch.InvalidJsonPatch as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise ApiError(422, str(exc)) from None


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return _MERGE_KEYS.get(field)


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [i for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in _MERGED_SCALAR_LISTS:
        return original + [i for i in patch if i not in original]
    key = _merge_key(field, [i for i in original + patch if isinstance(i, dict)])
    if key is None:
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for item in patch:
        same = [n for n, old in enumerate(result) if old.get(key) == item.get(key)]
        if item.get("$patch") == "delete":
            result = [old for old in result if old.get(key) != item.get(key)]
        elif same:
            result[same[0]] = _merge_map(result[same[0]], item)
        else:
            result.append(_merge_map({}, item))
    return result


def _ordered(items: list[Any], order: list[Any], field: str) -> list[Any]:
    """`$setElementOrder/<field>`: the listed elements first, in that order."""
    key = _merge_key(field, [i for i in items if isinstance(i, dict)])

    def identity(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [identity(i) for i in order]
    listed = sorted(
        (i for i in items if identity(i) in wanted), key=lambda i: wanted.index(identity(i))
    )
    return listed + [i for i in items if identity(i) not in wanted]


def _merge_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(original)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = _merge_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = value
    for key, value in patch.items():
        directive, _, field = key.partition("/")
        if directive == "$deleteFromPrimitiveList":
            result[field] = [i for i in result.get(field, []) if i not in value]
        elif directive == "$setElementOrder" and isinstance(result.get(field), list):
            result[field] = _ordered(result[field], value, field)
    if "$retainKeys" in patch:
        result = {k: v for k, v in result.items() if k in patch["$retainKeys"]}
    return result


def strategic_merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Kubernetes' strategic merge patch for the built-in kinds: lists with a merge key merge
    item by item, `$patch`, `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList`
    directives apply."""
    if not isinstance(patch, dict):
        raise bad_request("a strategic merge patch must be a JSON object")
    return _merge_map(target, patch)
