"""`rollout demo` and `rollout sandbox` as a person runs them (subprocesses), on the real stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROLLOUT = [sys.executable, "-m", "rollout.cli"]


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_interrupted_demo_says_nothing_untrue_and_stops_everything(tmp_path: Path) -> None:
    reports = tmp_path / "D"
    reports.mkdir()
    (reports / "report.json").write_text("{}")  # an earlier demo's report: not this run's
    os.utime(reports / "report.json", (time.time() - 3600, time.time() - 3600))
    out, err = (tmp_path / "out").open("w+"), (tmp_path / "err").open("w+")
    process = subprocess.Popen(
        [*ROLLOUT, "demo", "--scenario", "healthy", "--report-dir", str(reports)],
        stdout=out,
        stderr=err,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        state_dir = reports / "stack" / "state"
        deadline = time.monotonic() + 120
        while not any(state_dir.glob("*.json")):  # the rollout has begun
            assert process.poll() is None, (tmp_path / "out").read_text()
            assert time.monotonic() < deadline, "the demo's rollout never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = (tmp_path / "out").read_text() + (tmp_path / "err").read_text()
    assert code == 2, output  # interrupted: nothing decided
    assert "run the same command again" not in output  # a demo never resumes
    assert "reports:" not in output and "no report was written" in output
    pids = json.loads((reports / "stack" / "pids.json").read_text())
    assert all(_dead(pid) for pid in pids.values()), pids
