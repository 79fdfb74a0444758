"""`rollout promote` and `rollout abort` of a rollout a live `rollout run` drives, end to end:
the demo stack (model servers, HAProxy, Prometheus, load), `rollout run` and the verbs as the
user runs them. The policy holds each step for an hour and looks once an hour, so nothing but
the person's command moves the rollout, and every assertion is on where traffic ends up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from rollout.demo.launcher import DemoStack
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights
from rollout.routers.haproxy import HAProxyRouter
from rollout.state import LocalFileStore, Phase, RolloutState

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROLLOUT = [sys.executable, "-m", "rollout.cli"]
HELD = {
    "name": "held-for-an-hour",
    "steps": [{"weight": 20, "hold": "1h"}, {"weight": 50, "hold": "1h"}],
    "analysis": {"interval": "1h"},
    "minRequests": 100_000,
}
WAIT = 120.0  # bounds on waits for a busy machine, never timing claims


@pytest.fixture(scope="module")
def stack_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    with DemoStack(tmp_path_factory.mktemp("stack"), "healthy", 20.0, seed=5).start(
        load_seconds=3600.0
    ) as running:
        yield running


@pytest.fixture
def stack(stack_once: DemoStack) -> DemoStack:
    router(stack_once).set_weights(ALL_BASELINE)
    return stack_once


def router(stack: DemoStack) -> HAProxyRouter:
    assert stack.haproxy is not None
    return HAProxyRouter(stack.haproxy.router_config())


def rollout(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROLLOUT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=WAIT + 60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )


@contextlib.contextmanager
def live_run(stack: DemoStack, name: str, workdir: Path) -> Iterator[subprocess.Popen[str]]:
    """`rollout run` of `name` in `workdir` (spec rollout.yaml, state/, reports/), returned once
    its first step's weights are confirmed; stopped by its pid if the test leaves it running."""
    document = stack.spec_document(name=name)
    document["spec"]["policy"] = HELD
    (workdir / "rollout.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    process = subprocess.Popen(
        [*ROLLOUT, "run", "rollout.yaml", "--state-dir", "state", "--report-dir", "reports"],
        cwd=workdir,
        stdout=(workdir / "run.txt").open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        wait_for_state(workdir, name, lambda s: s.phase is Phase.PROGRESSING and s.confirmed)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=WAIT)


def saved(workdir: Path, name: str) -> RolloutState | None:
    return LocalFileStore(workdir / "state" / f"default-{name}.json").load()


def wait_for_state(
    workdir: Path, name: str, wanted: Callable[[RolloutState], bool]
) -> RolloutState:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        state = saved(workdir, name)
        if state is not None and wanted(state):
            return state
        time.sleep(0.2)
    pytest.fail(f"{name} never reached the state waited for:\n{(workdir / 'run.txt').read_text()}")


def test_promote_reaches_the_run_that_drives_the_rollout_and_the_run_goes_on(
    stack: DemoStack, tmp_path: Path
) -> None:
    with live_run(stack, "promoted", tmp_path) as run:
        assert router(stack).get_weights() == Weights.candidate_share(20)

        step = rollout("promote", "rollout.yaml", "--state-dir", "state", cwd=tmp_path)
        assert step.returncode == 0, step.stdout + step.stderr
        assert "a `rollout run` drives promoted: asked it to promote (the next step)" in step.stdout
        assert "step 2, weights" in step.stdout and "confirmed by read-back" in step.stdout
        assert router(stack).get_weights() == Weights.candidate_share(50)
        assert run.poll() is None  # the run goes on with the analysis at step 2

        full = rollout(
            "promote", "rollout.yaml", "--full", "--reason", "checked by hand",
            "--state-dir", "state", cwd=tmp_path,
        )  # fmt: skip
        assert full.returncode == 0, full.stdout + full.stderr
        assert run.wait(timeout=WAIT) == 0  # the run ends promoted, with its report
    assert router(stack).get_weights() == ALL_CANDIDATE
    assert "Promoted" in full.stdout and "reports/report.json" in full.stdout
    said = (tmp_path / "run.txt").read_text()
    assert (
        "`rollout promote` asks to promote (all traffic to the candidate): checked by hand" in said
    )
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["decision"] == "promoted"
    assert "checked by hand" in json.dumps(report)
    assert not (tmp_path / "state" / "default-promoted.command").exists()


def test_abort_reaches_the_run_that_drives_the_rollout(stack: DemoStack, tmp_path: Path) -> None:
    with live_run(stack, "aborted", tmp_path) as run:
        done = rollout(
            "abort", "rollout.yaml", "--reason", "wrong model", "--state-dir", "state",
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert run.wait(timeout=WAIT) == 1  # the run's own code for an aborted rollout
    assert router(stack).get_weights() == ALL_BASELINE
    assert "Aborted" in done.stdout
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["decision"] == "aborted" and "wrong model" in json.dumps(report)


def test_a_command_a_stuck_run_does_not_take_is_withdrawn_and_changes_nothing(
    stack: DemoStack, tmp_path: Path
) -> None:
    with live_run(stack, "stuck", tmp_path) as run:
        run.send_signal(signal.SIGSTOP)  # alive, holding the lock, taking nothing
        try:
            done = rollout(
                "promote", "rollout.yaml", "--full", "--state-dir", "state", cwd=tmp_path
            )
        finally:
            run.send_signal(signal.SIGCONT)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "did not take the command within 30s" in done.stdout
        assert "nothing changed" in done.stdout
        assert not (tmp_path / "state" / "default-stuck.command").exists()
        time.sleep(1.0)  # the resumed run has polled for commands again: none is there
        assert router(stack).get_weights() == Weights.candidate_share(20)
        state = saved(tmp_path, "stuck")
        assert state is not None and state.phase is Phase.PROGRESSING and state.step == 0
        assert run.poll() is None
