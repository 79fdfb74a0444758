"""A real Alertmanager (Debian package `prometheus-alertmanager`) on a loopback port, for tests.

It gets its own config file, storage dir and log under `workdir` and is stopped by the pid we
started. `--cluster.listen-address=` turns the gossip of a highly available pair off: it
would otherwise listen on 0.0.0.0:9094. The config is the README's (`readme_config`), so the
setup people copy is the one the end-to-end test runs.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from rollout.demo.procs import ManagedProcess, ProcessError, free_port

READY_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MARK = "# alertmanager.yml"  # the first line of the README's config block


def alertmanager_binary() -> str:
    """Debian names it `prometheus-alertmanager`, the upstream release `alertmanager`."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise ProcessError(
        "alertmanager is not on PATH: install it (Debian/Ubuntu: apt-get install -y "
        "prometheus-alertmanager), or run `make test`, which does"
    )


def readme_config() -> dict[str, Any]:
    """The Alertmanager config the README's "SLOs and alerts" section shows."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(README_MARK)]
    config: dict[str, Any] = yaml.safe_load(block)
    return config


@dataclass
class RunningAlertmanager:
    url: str
    config_path: Path
    process: ManagedProcess = field(repr=False)

    def stop(self) -> None:
        self.process.stop(grace=10.0)

    def alerts(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v2/alerts", timeout=10).json()
        return answer


def start_alertmanager(workdir: Path, config: dict[str, Any]) -> RunningAlertmanager:
    """Start Alertmanager on 127.0.0.1 with `config`; return once `/-/ready` answers 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    argv = [
        alertmanager_binary(),
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    process = ManagedProcess("alertmanager", argv, workdir / "alertmanager.log").start()
    running = RunningAlertmanager(f"http://127.0.0.1:{port}", config_path, process)
    try:
        process.wait_until(
            lambda: httpx.get(f"{running.url}/-/ready", timeout=2).status_code == 200,
            READY_TIMEOUT,
        )
    except ProcessError:
        running.stop()
        raise
    return running
