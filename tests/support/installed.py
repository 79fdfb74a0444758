"""The installed `rollout` console script (the one `pip install` puts beside the interpreter),
run as a person types it: a subprocess in a folder, no stdin, wide output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROLLOUT = str(Path(sys.executable).parent / "rollout")


def installed_rollout(
    *args: str, cwd: Path, timeout: float = 240.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`rollout ARGS...` in `cwd`; `env` adds to (or overrides) this process's environment."""
    return subprocess.run(
        [ROLLOUT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
