"""Server-side printing: the `meta.k8s.io` Table kubectl asks for, built from a kind's printer
columns (a CRD's additionalPrinterColumns) evaluated as simple JSONPaths."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from tests.support.fake_kube.errors import bad_request
from tests.support.fake_kube.kinds import Kind, PrinterColumn

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")
_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_-]+)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[['"](?P<quoted>[^'"]+)['"]\]"""
    r"""|\[\?\(@\.(?P<filter>[A-Za-z0-9_.-]+)\s*==\s*['"](?P<value>[^'"]*)['"]\)\]"""
)


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate `.a.b[0]`, `.a['x.y']` and `.a[?(@.type=="Ready")].status`; None if absent."""
    text = path.strip().removeprefix("{").removesuffix("}").strip()
    position, value = 0, obj
    while position < len(text) and value is not None:
        match = _STEP.match(text, position)
        if match is None:
            raise bad_request(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        position = match.end()
        if match["field"] is not None or match["quoted"] is not None:
            field = match["field"] if match["field"] is not None else match["quoted"]
            value = value.get(field) if isinstance(value, dict) else None
        elif match["index"] is not None:
            index = int(match["index"])
            value = (
                value[index]
                if isinstance(value, list) and -len(value) <= index < len(value)
                else None
            )
        else:
            wanted = match["value"]
            found = [
                item
                for item in (value if isinstance(value, list) else [])
                if str(jsonpath(item, "." + match["filter"])) == wanted
            ]
            value = found[0] if found else None
    return value


def human_age(seconds: float) -> str:
    """The compact age kubectl shows: 45s, 5m30s, 3h, 2d4h, 1y20d."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 120:
        return f"{max(total, 0)}s"
    minutes, hours = total // 60, total // 3600
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _cell(column: PrinterColumn, obj: Any) -> Any:
    value = jsonpath(obj, column.json_path)
    if value is None:
        return None
    if column.type == "date" and isinstance(value, str):
        try:
            stamp = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return value
        return human_age((datetime.now(UTC) - stamp).total_seconds())
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


def _columns(kind: Kind) -> tuple[PrinterColumn, ...]:
    return kind.printer_columns or (_AGE,)


def table(
    kind: Kind,
    objects: list[dict[str, Any]],
    version: str,
    include_object: str,
    list_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Table of these objects; `include_object` is the request's includeObject (None,
    Metadata or Object)."""
    columns = _columns(kind)
    definitions = [_NAME_COLUMN] + [
        {
            "name": column.name,
            "type": column.type,
            "format": column.format,
            "description": column.description,
            "priority": column.priority,
        }
        for column in columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {
            "cells": [obj["metadata"]["name"]] + [_cell(column, obj) for column in columns]
        }
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": f"meta.k8s.io/{version}",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": list_metadata or {},
        "columnDefinitions": definitions,
        "rows": rows,
    }
