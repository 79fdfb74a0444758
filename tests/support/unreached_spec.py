"""A spec file `rollout run` and `policy validate` accept whose router and Prometheus are never
contacted: for tests of what is refused (or checked) before anything is reached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

UNREACHED_HAPROXY = {
    "kind": "haproxy",
    "adminSocket": "127.0.0.1:9",
    "backend": "fraud",
    "baselineServer": "v1",
    "candidateServer": "v2",
}


def write_unreached_spec(tmp_path: Path, **spec: Any) -> Path:
    """`tmp_path/rollout.yaml`: model fraud-detector v1 -> v2, plus the `spec` fields given."""
    document = {
        "apiVersion": "rollout.mlops.dev/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": "fraud-detector",
            "baseline": {"version": "v1"},
            "candidate": {"version": "v2"},
            "router": UNREACHED_HAPROXY,
            "prometheus": {"url": "http://127.0.0.1:9"},
            **spec,
        },
    }
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(document))
    return path
