"""A CRD's structural schema applied as the API server applies it to custom resources: unknown
fields pruned (unless x-kubernetes-preserve-unknown-fields), defaults set, then the value
validated (type, nullable, int-or-string, enum, pattern, bounds, lengths, required)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

Schema = dict[str, Any]
_ROOT_KEPT = ("apiVersion", "kind", "metadata")  # ObjectMeta is the server's, not the schema's


def prune(value: Any, schema: Schema, root: bool = False) -> Any:
    """Drop fields the schema does not specify; fill in defaults."""
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True
        result = {}
        for key, item in value.items():
            if root and key in _ROOT_KEPT:
                result[key] = item
            elif key in properties:
                result[key] = prune(item, properties[key])
            elif isinstance(additional, dict):
                result[key] = prune(item, additional)
            elif keep_unknown or additional is True:
                result[key] = item
        for key, sub in properties.items():
            if key not in result and "default" in sub and not (root and key in _ROOT_KEPT):
                result[key] = copy.deepcopy(sub["default"])
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)


def _invalid(where: str, value: Any, should: str) -> tuple[str, str]:
    return (where, f"Invalid value: {_shown(value)}: {where} in body {should}")


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def validate(value: Any, schema: Schema, path: str = "") -> list[tuple[str, str]]:
    """(field path, message) for every violation, in the API server's wording."""
    where = path or "<root>"
    if value is None:
        allowed = schema.get("nullable") or not schema
        return [] if allowed else [_invalid(where, "null", f"must be of type {schema.get('type')}")]
    if schema.get("x-kubernetes-int-or-string"):
        if not (_TYPES["integer"](value) or isinstance(value, str)):
            return [_invalid(where, value, "must be of type integer-or-string")]
    elif "type" in schema and not _TYPES[schema["type"]](value):
        return [_invalid(where, value, f"must be of type {schema['type']}")]
    problems = _scalar_problems(value, schema, where)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{index}]")
    if isinstance(value, dict):
        for name in schema.get("required") or ():
            if name not in value:
                problems.append((f"{path}.{name}".lstrip("."), "Required value"))
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, additional if isinstance(additional, dict) else None)
            if sub is not None and (path or key not in _ROOT_KEPT):
                problems += validate(item, sub, f"{path}.{key}".lstrip("."))
    return problems


def _scalar_problems(value: Any, schema: Schema, where: str) -> list[tuple[str, str]]:
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_shown(v) for v in schema["enum"])
        problems.append(
            (where, f"Unsupported value: {_shown(value)}: supported values: {supported}")
        )
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(_invalid(where, value, f"should match '{schema['pattern']}'"))
        if len(value) < schema.get("minLength", 0):
            problems.append(
                _invalid(where, value, f"should be at least {schema['minLength']} chars long")
            )
        if len(value) > schema.get("maxLength", len(value)):
            problems.append((where, f"Too long: may not be longer than {schema['maxLength']}"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(
                _invalid(where, len(value), f"should have at least {schema['minItems']} items")
            )
        if len(value) > schema.get("maxItems", len(value)):
            problems.append(
                (where, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
            )
    if _TYPES["number"](value):
        low, high = schema.get("minimum"), schema.get("maximum")
        exclusive_low, exclusive_high = (
            schema.get("exclusiveMinimum"),
            schema.get("exclusiveMaximum"),
        )
        if low is not None and (value < low or (exclusive_low is True and value == low)):
            relation = "greater than" if exclusive_low is True else "greater than or equal to"
            problems.append(_invalid(where, value, f"should be {relation} {low}"))
        if high is not None and (value > high or (exclusive_high is True and value == high)):
            relation = "less than" if exclusive_high is True else "less than or equal to"
            problems.append(_invalid(where, value, f"should be {relation} {high}"))
    return problems
