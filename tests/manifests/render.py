"""The Kubernetes forms of the SLO files, generated from their one source each.

    python -m tests.manifests.render      # rewrites both after an edit of a source

- manifests/prometheus-rules.yaml: a PrometheusRule holding the groups of
  manifests/prometheus/rules.yaml (the plain rules file promtool tests);
- manifests/grafana/dashboards-configmap.yaml: a ConfigMap that Grafana's dashboard sidecar
  loads (label grafana_dashboard: "1"), holding manifests/grafana/*.json as they are.

The tests compare the committed files with what this renders, so they never drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "prometheus" / "rules.yaml"
PROMETHEUS_RULE = ROOT / "manifests" / "prometheus-rules.yaml"
DASHBOARDS = ROOT / "manifests" / "grafana"
CONFIGMAP = DASHBOARDS / "dashboards-configmap.yaml"
LABELS = {"app.kubernetes.io/name": "model-rollout", "app.kubernetes.io/component": "slo"}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, dashboard JSON) as `|` blocks, readable in a diff."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def _dump(header: str, document: dict[str, Any]) -> str:
    body = yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=4096)
    return header + body


def rule_groups(rules_text: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(rules_text)["groups"]
    return groups


def prometheus_rule(rules_text: str) -> str:
    """The PrometheusRule (Prometheus Operator) with the plain file's groups."""
    header = (
        "# Generated from manifests/prometheus/rules.yaml by `python -m tests.manifests.render`:\n"
        "# edit that file, then run it. The Prometheus Operator loads this resource when its\n"
        "# Prometheus' ruleSelector matches these labels (kube-prometheus-stack: add\n"
        "# `release: <its release name>`).\n"
    )
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "model-slo", "labels": dict(LABELS)},
        "spec": {"groups": rule_groups(rules_text)},
    }
    return _dump(header, document)


def dashboard_files(folder: Path = DASHBOARDS) -> dict[str, str]:
    """File name -> text of every dashboard JSON in `folder`."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.json"))}


def dashboards_configmap(files: dict[str, str]) -> str:
    """The ConfigMap Grafana's sidecar (k8s-sidecar) turns into dashboards, one per key."""
    header = (
        "# Generated from manifests/grafana/*.json by `python -m tests.manifests.render`: edit\n"
        "# the JSON, then run it. Grafana's dashboard sidecar loads every ConfigMap labelled\n"
        '# grafana_dashboard: "1" (kube-prometheus-stack: grafana.sidecar.dashboards.enabled).\n'
    )
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "model-rollout-dashboards",
            "labels": {"grafana_dashboard": "1", **LABELS},
        },
        "data": dict(files),
    }
    return _dump(header, document)


def main() -> None:
    PROMETHEUS_RULE.write_text(prometheus_rule(RULES.read_text(encoding="utf-8")), "utf-8")
    CONFIGMAP.write_text(dashboards_configmap(dashboard_files()), encoding="utf-8")
    for path in (PROMETHEUS_RULE, CONFIGMAP):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
