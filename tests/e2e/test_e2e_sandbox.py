"""`rollout sandbox up`, then `rollout run` on the spec it prints, then `rollout sandbox down`:
as a person types them, with the installed `rollout` command, on the real local stack."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollout.demo.procs import process_identity
from tests.support.installed import installed_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass(frozen=True)
class Sandbox:
    cwd: Path
    up: subprocess.CompletedProcess[str]

    @property
    def record(self) -> dict[str, dict[str, dict[str, object]]]:
        data: dict[str, dict[str, dict[str, object]]] = json.loads(
            (self.cwd / "sb" / "sandbox.json").read_text()
        )
        return data

    def pids(self) -> dict[str, int]:
        return {name: int(str(p["pid"])) for name, p in self.record["processes"].items()}

    def printed(self, command: str) -> list[str]:
        """The arguments of the printed `rollout COMMAND ...` line."""
        line = next(
            (s.strip() for s in self.up.stdout.splitlines() if s.strip().startswith(command)),
            None,
        )
        assert line is not None, f"no `{command}` line in:\n{self.up.stdout}"
        return shlex.split(line)[1:]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A latency sandbox in `sb/` of a temporary folder; downed at the end whatever happens."""
    cwd = tmp_path_factory.mktemp("sandbox")
    up = installed_rollout("sandbox", "up", "--scenario", "latency", "--dir", "sb", cwd=cwd)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield Sandbox(cwd, up)
    finally:
        installed_rollout("sandbox", "down", "--dir", "sb", cwd=cwd)


def test_a_second_up_in_the_same_dir_exits_3_and_starts_nothing(sandbox: Sandbox) -> None:
    before = sandbox.pids()
    again = installed_rollout("sandbox", "up", "--dir", "sb", cwd=sandbox.cwd)
    assert again.returncode == 3, again.stdout + again.stderr
    assert "already up in sb" in again.stdout and "rollout sandbox down --dir sb" in again.stdout
    assert sandbox.pids() == before
    assert all(process_identity(pid) is not None for pid in before.values())


def test_run_on_the_printed_spec_rolls_a_slow_v2_back_and_down_stops_everything(
    sandbox: Sandbox,
) -> None:
    printed = sandbox.up.stdout
    assert "kind: ModelRollout" in printed and "policy: demo" in printed
    assert "16686" not in printed  # no link to a trace UI that nothing started
    spec_path = sandbox.cwd / "sb" / "rollout.yaml"
    assert "traceLinkTemplate: file://" in spec_path.read_text()
    for command in ("rollout gate --prometheus-url http://127.0.0.1:", "rollout abort"):
        assert command in printed

    run_args = sandbox.printed("rollout run")
    assert run_args[:2] == ["run", "sb/rollout.yaml"]
    done = installed_rollout(*run_args, cwd=sandbox.cwd)
    assert done.returncode == 1, done.stdout + done.stderr  # rolled back
    report = json.loads((sandbox.cwd / "sb" / "reports" / "report.json").read_text())
    assert report["decision"] == "rolled_back"
    assert report["judgement"]["decided_by"] == "latency_p95"
    links = [e["link"] for e in report["evidence"]]
    assert links and all(link.startswith("file://") for link in links)

    pids = sandbox.pids()
    assert set(pids) == {"server-v1", "server-v2", "haproxy", "prometheus", "load"}
    down = installed_rollout(*sandbox.printed("rollout sandbox down"), cwd=sandbox.cwd)
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in pids.items():
        assert f"{name} (pid {pid})" in down.stdout
        assert process_identity(pid) is None, f"{name} (pid {pid}) is still running"
    assert not (sandbox.cwd / "sb" / "sandbox.json").exists()

    again = installed_rollout("sandbox", "down", "--dir", "sb", cwd=sandbox.cwd)
    assert again.returncode == 0 and "nothing to stop" in again.stdout, again.stdout
