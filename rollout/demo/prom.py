"""Start a real Prometheus on a loopback port: for the demo, the tests and fault tests.

The server gets its own config file, data dir and log under `workdir`, and is
stopped by the pid we started. Restarting on the same data dir and port (a fault
test's "Prometheus came back") is `RunningPrometheus.restart()`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from rollout.demo.procs import ManagedProcess, ProcessError, free_port

READY_TIMEOUT = 60.0


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise ProcessError(
            "prometheus is not on PATH: install it (Debian/Ubuntu: apt-get install -y prometheus; "
            "macOS: brew install prometheus), or run `make test`/`make demo`, which do"
        )
    return found


def write_config(
    path: Path, scrape_targets: dict[str, list[str]] | None, scrape_interval: str
) -> Path:
    """A prometheus.yml scraping `job -> [host:port, ...]` every `scrape_interval`."""
    jobs = [
        {"job_name": job, "static_configs": [{"targets": list(targets)}]}
        for job, targets in (scrape_targets or {}).items()
    ]
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": jobs,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class RunningPrometheus:
    """A Prometheus we started; `url` is its base URL on 127.0.0.1."""

    url: str
    port: int
    data_dir: Path
    config_path: Path
    argv: list[str]
    log_path: Path
    process: ManagedProcess = field(repr=False)

    def stop(self) -> None:
        """SIGTERM by pid (SIGKILL after a grace period); the data dir stays."""
        self.process.stop(grace=10.0)

    def kill(self) -> None:
        self.process.kill()

    def start(self) -> RunningPrometheus:
        """Start again on the same port, config and data dir, and wait until ready."""
        if self.process.alive():
            return self
        self.process = ManagedProcess("prometheus", self.argv, self.log_path).start()
        # /-/ready answers 503 while the TSDB loads: wait for a 200, not just an answer.
        self.process.wait_until(lambda: _is_ready(self.url), timeout=READY_TIMEOUT)
        return self

    def restart(self) -> RunningPrometheus:
        self.stop()
        return self.start()

    def __enter__(self) -> RunningPrometheus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _is_ready(url: str) -> bool:
    return httpx.get(f"{url}/-/ready", timeout=2.0).status_code == 200


def start_prometheus(
    workdir: Path,
    scrape_targets: dict[str, list[str]] | None = None,
    *,
    port: int | None = None,
    scrape_interval: str = "1s",
    exemplars: bool = True,
    data_dir: Path | None = None,
    retention: str = "3650d",
) -> RunningPrometheus:
    """Start Prometheus on 127.0.0.1 and return once `/-/ready` answers 200.

    `data_dir` may hold backfilled blocks (`promtool tsdb create-blocks-from`); the long
    default `retention` keeps such old blocks from being deleted at start-up.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    data_dir = data_dir or workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = write_config(workdir / "prometheus.yml", scrape_targets, scrape_interval)
    argv = [
        prometheus_binary(),
        f"--config.file={config_path}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={retention}",
        "--web.enable-lifecycle",
    ]
    if exemplars:
        argv.append("--enable-feature=exemplar-storage")
    log_path = workdir / "prometheus.log"
    process = ManagedProcess("prometheus", argv, log_path)
    running = RunningPrometheus(
        url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        config_path=config_path,
        argv=argv,
        log_path=log_path,
        process=process,
    )
    try:
        return running.start()
    except ProcessError:
        running.stop()
        raise
