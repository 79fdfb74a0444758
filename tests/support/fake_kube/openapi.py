"""A minimal OpenAPI v3 publication: per group-version, the PATCH operation of each kind with
its `fieldValidation` query parameter. kubectl reads it to learn that the server validates
fields itself (so `kubectl apply` works with its default --validate=strict). Schemas are not
published: kubectl then computes strategic merge patches from its built-in types."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.support.fake_kube.kinds import Kind, Registry


def _path(kind: Kind) -> str:
    base = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    scope = "/namespaces/{namespace}" if kind.namespaced else ""
    return f"{base}{scope}/{kind.plural}/{{name}}"


def group_version_document(kinds: list[Kind]) -> dict[str, Any]:
    paths = {
        _path(kind): {
            "patch": {
                "operationId": f"patch{kind.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": kind.group,
                    "version": kind.version,
                    "kind": kind.kind,
                },
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
        for kind in kinds
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-fake"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _relative(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            document = group_version_document(registry.kinds_in(group, version))
            digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
            relative = _relative(group, version)
            paths[relative] = {"serverRelativeURL": f"/openapi/v3/{relative}?hash={digest[:32]}"}
    return {"paths": paths}


def document(registry: Registry, relative: str) -> dict[str, Any] | None:
    for group, versions in registry.groups().items():
        for version in versions:
            if _relative(group, version) == relative:
                return group_version_document(registry.kinds_in(group, version))
    return None
