"""The lifecycle verbs on the real local stack: a real HAProxy (weights read back through its
runtime API) and a real Prometheus on backfilled data. Rollouts run on the replay clock in
process; `rollout status`, `list`, `promote` and `retry` run as the installed command."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import yaml
from rich.console import Console

from rollout.driver import promote_from_spec, retry_from_spec, run_from_spec
from rollout.exit_codes import ExitCode
from rollout.routers.base import ALL_CANDIDATE
from rollout.routers.haproxy import HAProxyRouter
from rollout.spec import RolloutSpec
from rollout.state import LocalFileStore, LocalStateStore, Phase, RolloutState
from tests.support.backfill import BackfilledPrometheus
from tests.support.installed import installed_rollout
from tests.support.replay import POLICY, ReplayClock, Stack, answered_by, make_spec
from tests.support.scenarios import BASELINE, CANDIDATE


def with_candidate(spec: RolloutSpec, version: str) -> RolloutSpec:
    candidate = spec.spec.candidate.model_copy(update={"version": version})
    return spec.model_copy(update={"spec": spec.spec.model_copy(update={"candidate": candidate})})


def console(tmp_path: Path) -> Console:
    return Console(file=(tmp_path / "console.txt").open("a"), width=200)


def run(spec: RolloutSpec, prometheus: BackfilledPrometheus, tmp_path: Path) -> ExitCode:
    return run_from_spec(
        spec,
        POLICY,
        state_dir=tmp_path / "state",
        report_dir=tmp_path / "report",
        console=console(tmp_path),
        clock=ReplayClock(prometheus.dataset.start + 120),
    )


def spec_file(spec: RolloutSpec, tmp_path: Path) -> Path:
    """The spec as a person writes it, with the bench's policy in policy.yaml beside it."""
    document = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["spec"]["policy"] = "policy.yaml"
    policy = POLICY.model_dump(mode="json", by_alias=True, exclude_none=True)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return installed_rollout(*args, "--state-dir", str(tmp_path / "state"), cwd=tmp_path)


def saved(tmp_path: Path, model: str) -> RolloutState:
    state = LocalFileStore(tmp_path / "state" / f"default-{model}.json").load()
    assert state is not None
    return state


def test_a_paused_rollout_promoted_by_hand_with_full_has_all_traffic_on_the_candidate(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    spec = make_spec("gate-nocandidate", stack.haproxy, synthetic_prometheus.url)
    assert run(spec, synthetic_prometheus, tmp_path) is ExitCode.PAUSED
    status = cli(tmp_path, "status", "gate-nocandidate")
    assert status.returncode == 2, status.stdout + status.stderr
    assert "Paused" in status.stdout and "rollout promote SPEC" in status.stdout

    path = spec_file(spec, tmp_path)
    promoted = installed_rollout(
        "promote", str(path), "--full", "--reason", "v2 checked by hand",
        "--state-dir", str(tmp_path / "state"), "--report-dir", str(tmp_path / "report"),
        cwd=tmp_path,
    )  # fmt: skip
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == ALL_CANDIDATE
    assert answered_by(stack.haproxy) == Counter({CANDIDATE: 40})
    state = saved(tmp_path, "gate-nocandidate")
    assert state.phase is Phase.PROMOTED and state.confirmed and state.report_written
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["decision"] == "promoted"
    assert report["reason"] == "promoted by hand: v2 checked by hand"
    assert any("promoted by hand at step 1" in note for note in report["notes"])

    status = cli(tmp_path, "status")
    assert status.returncode == 0 and "Promoted" in status.stdout
    assert str(tmp_path / "report" / "report.json") in status.stdout
    again = installed_rollout(
        "promote", str(path), "--state-dir", str(tmp_path / "state"), cwd=tmp_path
    )
    assert again.returncode == 3 and "already promoted" in again.stdout
    retry = installed_rollout(
        "retry", str(path), "--state-dir", str(tmp_path / "state"), cwd=tmp_path
    )
    assert retry.returncode == 3 and "nothing to retry" in retry.stdout


def test_promote_without_full_moves_one_step_and_run_goes_on_from_there(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    spec = make_spec("gate-nocandidate", stack.haproxy, synthetic_prometheus.url)
    assert run(spec, synthetic_prometheus, tmp_path) is ExitCode.PAUSED
    code = promote_from_spec(
        spec, POLICY, full=False, reason="next", state_dir=tmp_path / "state",
        report_dir=None, console=console(tmp_path),
        clock=ReplayClock(synthetic_prometheus.dataset.start + 900),
    )  # fmt: skip
    assert code is ExitCode.PROMOTED
    state = saved(tmp_path, "gate-nocandidate")
    assert state.phase is Phase.PROGRESSING and state.step == 1 and state.confirmed
    assert HAProxyRouter(stack.haproxy.router_config()).get_weights() == state.desired
    assert "rollout run SPEC` goes on" in (tmp_path / "console.txt").read_text()
    status = cli(tmp_path, "status", "gate-nocandidate")
    assert status.returncode == 2 and "no `rollout run` drives it" in status.stdout


def test_a_rolled_back_rollout_is_retried_from_step_1_and_the_attempt_is_archived(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    spec = make_spec("gate-errors", stack.haproxy, synthetic_prometheus.url)
    assert run(spec, synthetic_prometheus, tmp_path) is ExitCode.ROLLED_BACK
    assert cli(tmp_path, "status").returncode == 1
    code = promote_from_spec(
        spec, POLICY, full=True, reason="x", state_dir=tmp_path / "state",
        report_dir=None, console=console(tmp_path),
    )  # fmt: skip
    assert code is ExitCode.BAD_INPUT and "rollout retry SPEC" in (
        tmp_path / "console.txt"
    ).read_text().replace("\n", "")
    code = retry_from_spec(
        spec, POLICY, reason="once more", state_dir=tmp_path / "state",
        report_dir=tmp_path / "report", console=console(tmp_path),
        clock=ReplayClock(synthetic_prometheus.dataset.start + 120),
    )  # fmt: skip
    assert code is ExitCode.ROLLED_BACK  # the same data: the same decision again
    state = saved(tmp_path, "gate-errors")
    assert any("retried from step 1" in note for note in state.notes)
    entries = LocalStateStore(tmp_path / "state").entries()
    assert len(entries) == 2
    listed = cli(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "(archived)" in listed.stdout and "(current)" in listed.stdout
    assert listed.stdout.count("RolledBack") == 2


def test_a_new_candidate_after_a_decision_is_a_new_rollout_and_the_old_one_is_archived(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    spec = make_spec("gate-same", stack.haproxy, synthetic_prometheus.url)
    assert run(spec, synthetic_prometheus, tmp_path) is ExitCode.PROMOTED
    newer = with_candidate(spec, "2.4.1")
    code = run(newer, synthetic_prometheus, tmp_path)
    assert code is not ExitCode.BAD_INPUT
    output = (tmp_path / "console.txt").read_text()
    assert "archived to" in output and "remove the state file" not in output
    state = saved(tmp_path, "gate-same")
    assert state.target.candidate == "2.4.1"
    listed = cli(tmp_path, "list")
    assert CANDIDATE in listed.stdout and "2.4.1" in listed.stdout and "Promoted" in listed.stdout


def test_another_candidate_while_one_is_undecided_is_refused_naming_the_file(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    spec = make_spec("gate-nocandidate", stack.haproxy, synthetic_prometheus.url)
    assert run(spec, synthetic_prometheus, tmp_path) is ExitCode.PAUSED
    newer = with_candidate(spec, "2.4.1")
    assert run(newer, synthetic_prometheus, tmp_path) is ExitCode.BAD_INPUT
    output = (tmp_path / "console.txt").read_text().replace("\n", "")
    assert str(tmp_path / "state" / "default-gate-nocandidate.json") in output
    assert "rollout abort SPEC" in output
    assert saved(tmp_path, "gate-nocandidate").target.candidate == CANDIDATE


def test_status_and_list_without_rollouts(tmp_path: Path) -> None:
    status = cli(tmp_path, "status", "nope")
    assert status.returncode == 3 and "no rollout 'nope'" in status.stdout
    listed = cli(tmp_path, "list")
    assert listed.returncode == 0 and "no rollouts" in listed.stdout
    assert BASELINE  # the bench's versions are the scenarios'


def test_status_waits_while_a_run_drives_the_rollout_and_watch_prints_each_change(
    tmp_path: Path,
) -> None:
    """A state made by the engine; a lock held as a live `rollout run` holds it; the rollout
    is decided while `status` waits."""
    import threading

    from rollout.analysis.observation import Target
    from rollout.engine import Promote, ReportWritten, Started, WeightsRead, advance
    from rollout.lifecycle import status

    store = LocalStateStore(tmp_path / "state")
    now = 1_700_000_000.0
    state = RolloutState.new("iris", Target("iris", BASELINE, CANDIDATE), "d", now)
    state, _ = advance(state, Started(), POLICY, now)
    state, _ = advance(state, WeightsRead(state.desired), POLICY, now + 1)
    version = store.save("default-iris", state, None)
    out = tmp_path / "status.txt"

    def decide() -> None:
        decided, _ = advance(state, Promote(full=True, reason="x"), POLICY, now + 2)
        decided, _ = advance(decided, WeightsRead(ALL_CANDIDATE), POLICY, now + 3)
        decided, _ = advance(decided, ReportWritten(("r.json",)), POLICY, now + 4)
        store.save("default-iris", decided, version)

    with store.lock("default-iris"):
        timer = threading.Timer(1.5, decide)
        timer.start()
        code = status(
            tmp_path / "state", "iris", watch=True, timeout=30, poll=0.2,
            console=Console(file=out.open("w"), width=200),
        )  # fmt: skip
        timer.join()
    text = out.read_text()
    assert code is ExitCode.PROMOTED, text
    assert "phase: Progressing" in text and "next: the first look" in text
    assert text.count("rollout iris") == 2 and "Promoted (exit 0)" in text

    with store.lock("default-iris"):
        store.save("default-iris", state, store.load("default-iris")[1])  # type: ignore[index]
        code = status(
            tmp_path / "state", None, watch=False, timeout=0.5, poll=0.1,
            console=Console(file=out.open("w"), width=200),
        )  # fmt: skip
    assert code is ExitCode.INFRASTRUCTURE and "still Progressing" in out.read_text()
    code = status(
        tmp_path / "state", None, watch=False, timeout=0.5, poll=0.1,
        console=Console(file=out.open("w"), width=200),
    )  # fmt: skip
    assert code is ExitCode.PAUSED and "no `rollout run` drives it" in out.read_text()
