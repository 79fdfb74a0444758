"""Backfill synthetic OpenMetrics into TSDB blocks and start a real Prometheus on them.

The synthetic timeline ends `past_end()`: at least 3 hours ago, on a whole hour.
promtool's documentation warns that backfilling the last 3 hours can overlap the
head block Prometheus is still writing; data older than that lives only in the
backfilled blocks, so a query at a past time reads exactly what was generated.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rollout.demo.prom import RunningPrometheus, start_prometheus
from tests.support.synthetic import Dataset

HEAD_BLOCK_SAFETY = 3 * 3600


def past_end(now: float | None = None) -> float:
    """A whole hour at least three hours before `now`."""
    now = time.time() if now is None else now
    return float(int(now - HEAD_BLOCK_SAFETY) // 3600 * 3600)


def create_blocks(openmetrics: str, workdir: Path) -> Path:
    """Write the text to a file and turn it into TSDB blocks in `workdir/data`."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool is not on PATH: it comes with the Debian package prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "synthetic.om.txt"
    source.write_text(openmetrics, encoding="utf-8")
    data_dir = workdir / "data"
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool failed ({result.returncode}):\n{result.stderr[-2000:]}")
    source.unlink()  # as large as the blocks (~170 MB for the standard dataset); kept on failure
    return data_dir


@dataclass
class BackfilledPrometheus:
    prometheus: RunningPrometheus
    dataset: Dataset

    @property
    def url(self) -> str:
        return self.prometheus.url

    def stop(self) -> None:
        self.prometheus.stop()


def backfilled_prometheus(dataset: Dataset, workdir: Path) -> BackfilledPrometheus:
    """Backfill `dataset` and start Prometheus on it (no scrape targets). Stop it when done."""
    data_dir = create_blocks(dataset.openmetrics, workdir)
    running = start_prometheus(workdir, None, data_dir=data_dir, exemplars=False)
    return BackfilledPrometheus(prometheus=running, dataset=dataset)
