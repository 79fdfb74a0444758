"""What the fake serves: resource kinds by group/version/plural, built-in or from a CRD."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NAME_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
EVENT_FIELDS = NAME_FIELDS | {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry of a CRD version."""

    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    """One served resource at one version. Objects are stored per (group, plural): every
    served version of a CRD shows the same objects (no conversion, as with `strategy: None`)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    # Custom resources refuse strategic merge patch and a PUT without a resourceVersion.
    custom: bool = False
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    field_labels: frozenset[str] = field(default=NAME_FIELDS)
    # A CRD version's openAPIV3Schema: custom resources are pruned and validated by it.
    schema: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> tuple[str, str]:
        return (self.group, self.plural)


def _builtin() -> list[Kind]:
    return [
        Kind("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True,
             singular="namespace", short_names=("ns",)),
        Kind("", "v1", "services", "Service", status_subresource=True, singular="service",
             short_names=("svc",), categories=("all",)),
        Kind("", "v1", "configmaps", "ConfigMap", singular="configmap", short_names=("cm",)),
        Kind("", "v1", "events", "Event", singular="event", short_names=("ev",),
             field_labels=EVENT_FIELDS),
        Kind("apps", "v1", "deployments", "Deployment", status_subresource=True,
             singular="deployment", short_names=("deploy",), categories=("all",)),
        Kind("coordination.k8s.io", "v1", "leases", "Lease", singular="lease"),
        Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions",
             "CustomResourceDefinition", namespaced=False, status_subresource=True,
             singular="customresourcedefinition", short_names=("crd", "crds")),
    ]  # fmt: skip


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA before beta before alpha, higher numbers first."""
    match = _VERSION.match(version)
    if match is None:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
    return (stage, int(match.group(1)), int(match.group(3) or 0))


def kinds_from_crd(crd: dict[str, Any]) -> list[Kind]:
    """The kinds a CRD serves: one per served version."""
    spec = crd["spec"]
    names = spec["names"]
    kinds = []
    for version in spec["versions"]:
        if not version.get("served", False):
            continue
        columns = tuple(
            PrinterColumn(
                name=column["name"],
                type=column["type"],
                json_path=column["jsonPath"],
                format=column.get("format", ""),
                description=column.get("description", ""),
                priority=int(column.get("priority", 0)),
            )
            for column in version.get("additionalPrinterColumns", ())
        )
        kinds.append(
            Kind(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                status_subresource="status" in (version.get("subresources") or {}),
                custom=True,
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                printer_columns=columns,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return kinds


class Registry:
    """The kinds served now; CRDs come and go while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str, str], Kind] = {}
        self._from_crd: dict[str, list[Kind]] = {}
        for kind in _builtin():
            self.add(kind)

    def add(self, kind: Kind) -> None:
        with self._lock:
            self._kinds[(kind.group, kind.version, kind.plural)] = kind

    def lookup(self, group: str, version: str, plural: str) -> Kind | None:
        with self._lock:
            return self._kinds.get((group, version, plural))

    def set_crd(self, name: str, kinds: Iterable[Kind]) -> None:
        """Serve exactly these kinds for the CRD `name` (replacing what it served before)."""
        with self._lock:
            for old in self._from_crd.pop(name, []):
                self._kinds.pop((old.group, old.version, old.plural), None)
            added = list(kinds)
            for kind in added:
                self._kinds[(kind.group, kind.version, kind.plural)] = kind
            if added:
                self._from_crd[name] = added

    def groups(self) -> dict[str, list[str]]:
        """Group -> served versions, preferred version first; the core group is ''."""
        with self._lock:
            versions: dict[str, set[str]] = {}
            for group, version, _ in self._kinds:
                versions.setdefault(group, set()).add(version)
        return {
            group: sorted(found, key=version_priority, reverse=True)
            for group, found in sorted(versions.items())
        }

    def kinds_in(self, group: str, version: str) -> list[Kind]:
        with self._lock:
            return [
                kind
                for (g, v, _), kind in sorted(self._kinds.items())
                if g == group and v == version
            ]
