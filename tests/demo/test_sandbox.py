"""`rollout sandbox` bookkeeping without the stack: the record, refusals, stopping only what
is still ours. Real processes (`sleep`) stand in for the stack's."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.demo.procs import process_identity
from rollout.demo.sandbox import RECORD
from tests.support.installed import installed_rollout


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start `sleep` processes with `sleepers.append(...)`; each is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill()
            process.wait()


def sleep(sleepers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "120"])
    sleepers.append(process)
    return process


def write_record(directory: Path, processes: dict[str, tuple[int, str]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "scenario": "latency",
        "processes": {
            name: {"pid": pid, "identity": identity, "address": "127.0.0.1:1"}
            for name, (pid, identity) in processes.items()
        },
    }
    (directory / RECORD).write_text(json.dumps(record))


def test_down_with_nothing_up_exits_0_and_says_so(tmp_path: Path) -> None:
    done = installed_rollout("sandbox", "down", "--dir", "sb", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no sandbox is up in sb: nothing to stop" in done.stdout
    assert not (tmp_path / "sb").exists()  # down creates nothing


def test_up_is_refused_with_exit_3_while_a_recorded_process_runs(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    process = sleep(sleepers)
    identity = process_identity(process.pid)
    assert identity is not None
    write_record(tmp_path / "sb", {"prometheus": (process.pid, identity)})

    done = installed_rollout("sandbox", "up", "--dir", "sb", cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"already up in sb: prometheus (pid {process.pid})" in done.stdout
    assert "rollout sandbox down --dir sb" in done.stdout
    assert not (tmp_path / "sb" / "stack").exists()  # nothing was started
    assert process.poll() is None


def test_down_stops_what_is_still_ours_and_leaves_a_reused_pid_alone(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    ours, stranger = sleep(sleepers), sleep(sleepers)
    identity = process_identity(ours.pid)
    assert identity is not None
    write_record(
        tmp_path / "sb",
        {
            "load": (ours.pid, identity),
            # The pid now names another process: a different start time and command line.
            "haproxy": (stranger.pid, "1 haproxy -f haproxy.cfg"),
        },
    )

    done = installed_rollout("sandbox", "down", "--dir", "sb", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stopped: load (pid {ours.pid})" in done.stdout
    assert f"not running any more (left alone): haproxy (pid {stranger.pid})" in done.stdout
    assert ours.wait(timeout=10) is not None
    assert stranger.poll() is None  # not ours: untouched
    assert not (tmp_path / "sb" / RECORD).exists()


def test_a_process_identity_is_stable_while_it_runs_and_gone_after(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    process = sleep(sleepers)
    first = process_identity(process.pid)
    assert first is not None and "sleep 120" in first
    assert process_identity(process.pid) == first
    process.kill()
    process.wait()
    assert process_identity(process.pid) is None
    assert process_identity(os.getpid()) is not None


def test_a_process_read_the_moment_it_starts_has_its_command_in_its_identity() -> None:
    # Right after Popen returns the kernel may not have laid out the new arguments yet; an
    # identity taken then would never match again and `up` would think the sandbox is gone.
    for _ in range(1000):
        process = subprocess.Popen(["sleep", "120"])
        try:
            identity = process_identity(process.pid)
            assert identity is not None and identity.endswith(" sleep 120"), identity
        finally:
            process.kill()
            process.wait()


def test_up_exits_4_when_a_part_cannot_start_and_leaves_nothing_running(tmp_path: Path) -> None:
    # No prometheus on PATH: the model servers and HAProxy start first, then must be stopped.
    empty = tmp_path / "bin"
    empty.mkdir()
    done = installed_rollout("sandbox", "up", "--dir", "sb", cwd=tmp_path, env={"PATH": str(empty)})
    assert done.returncode == 4, done.stdout + done.stderr
    assert "did not start" in done.stdout and "prometheus is not on PATH" in done.stdout
    assert (tmp_path / "sb" / "stack" / "server-v1.log").exists()  # the logs stay
    assert not (tmp_path / "sb" / RECORD).exists()
    assert started_from(tmp_path) == [], "a process of the failed sandbox still runs"


def started_from(folder: Path) -> list[str]:
    """Live processes whose command line names `folder` (the stack's files are in it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if str(folder) in cmdline and process_identity(int(proc.name)) is not None:
                found.append(cmdline)
    return found
