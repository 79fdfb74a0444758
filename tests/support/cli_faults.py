"""Faults injected into real `rollout run` processes on a real local stack.

`FaultStack` is a healthy `DemoStack` (v1, v2, HAProxy, Prometheus, load) with a
`FaultProxy` in front of Prometheus and an `AdminTap` in front of HAProxy's runtime
API; both pass everything through until told otherwise. `CliRun` runs `rollout run`
as a subprocess against it, reading the state file while it runs (every read must
parse: a torn file fails the run). Each scenario function injects one fault and
returns an `Outcome`; the tests in tests/faults/ assert on it and
benchmarks/faults.py counts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from rollout.demo.launcher import DemoStack
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.routers.haproxy import HAProxyRouter
from rollout.state import Phase, RolloutState, state_from_json
from tests.support.admin_tap import AdminTap
from tests.support.fault_proxy import Fault, FaultProxy

ROOT = Path(__file__).resolve().parent.parent.parent
W20 = Weights.candidate_share(20)
W50 = Weights.candidate_share(50)
OUTAGE_LIMIT = 15.0  # the policy's outage.maxDuration, seconds
# Short holds and a look every 2 s: a healthy rollout takes about 20 s.
FAST_POLICY: dict[str, Any] = {
    "steps": [{"weight": 20, "hold": "6s"}, {"weight": 50, "hold": "6s"}],
    "analysis": {"interval": "2s"},
    "minRequests": 40,
    "inconclusiveGrace": "10s",
    "outage": {"maxDuration": f"{OUTAGE_LIMIT:g}s"},
}
ONE_STEP_POLICY: dict[str, Any] = {**FAST_POLICY, "steps": [{"weight": 50, "hold": "4s"}]}
RUN_TIMEOUT = 240.0


class FaultStack:
    """A healthy demo stack, a fault proxy before Prometheus and a tap before HAProxy."""

    def __init__(self, workdir: Path, rps: float = 40.0) -> None:
        self.workdir = workdir
        self.demo = DemoStack(workdir / "stack", "healthy", rps)
        self.proxy: FaultProxy | None = None
        self.tap: AdminTap | None = None

    def start(self) -> FaultStack:
        try:
            self.demo.start(load_seconds=3600.0)
            assert self.demo.prometheus is not None and self.demo.haproxy is not None
            self.proxy = FaultProxy(self.demo.prometheus.url, delay=5.0, keep_version="v1")
            self.proxy.start()
            self.tap = AdminTap(self.demo.haproxy.admin_socket).start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def router(self) -> HAProxyRouter:
        assert self.demo.haproxy is not None
        return HAProxyRouter(self.demo.haproxy.router_config())

    def reset(self) -> None:
        """Everything up, no fault, all traffic on v1: each scenario starts from here."""
        demo = self.demo
        assert demo.prometheus is not None and demo.haproxy is not None
        assert self.proxy is not None and self.tap is not None
        demo.prometheus.start()  # no-op when it runs
        if not demo.haproxy.alive():
            demo.haproxy.start()
        self.proxy.switch(Fault.NONE)
        self.proxy.forget()
        self.tap.release()
        self.router.set_weights(ALL_BASELINE)

    def answered_by(self, requests: int = 40) -> Counter[str]:
        """Which version answers requests sent through HAProxy."""
        assert self.demo.haproxy is not None
        with httpx.Client(base_url=self.demo.haproxy.url, timeout=10.0) as client:
            answers = (client.get("/healthz") for _ in range(requests))
            return Counter(a.headers.get("x-model-version", "?") for a in answers)

    def stop(self) -> None:
        for part in (self.tap, self.proxy):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        self.demo.stop()


class TornStateError(AssertionError):
    """The state file could not be parsed while a run was writing it."""


@dataclass
class CliRun:
    """`rollout run` of one ModelRollout file against a `FaultStack`, as a subprocess."""

    stack: FaultStack
    workdir: Path
    name: str
    policy: dict[str, Any] = field(default_factory=lambda: dict(FAST_POLICY))
    prometheus: dict[str, Any] = field(default_factory=dict)  # extra spec.prometheus fields
    through_tap: bool = True  # False: the spec names HAProxy's own admin socket
    label: str = "run"  # output files are <label><n>.out/.err: runs sharing a workdir differ
    reads: int = 0
    runs: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spec = self.write_spec()
        self.state_path = self.workdir / "state" / f"default-{self.name}.json"
        self.report_dir = self.workdir / "report"

    def write_spec(self) -> Path:
        stack = self.stack
        assert stack.proxy is not None and stack.tap is not None
        document: Any = stack.demo.spec_document()
        document["metadata"]["name"] = self.name
        body = document["spec"]
        body["policy"] = "policy.yaml"
        body["prometheus"] = {"url": stack.proxy.url, "timeout": "2s", **self.prometheus}
        if self.through_tap:
            body["router"]["adminSocket"] = str(stack.tap.path)
        (self.workdir / "policy.yaml").write_text(yaml.safe_dump(self.policy))
        path = self.workdir / "rollout.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "rollout.cli",
            "run",
            str(self.spec),
            "--state-dir",
            str(self.state_path.parent),
            "--report-dir",
            str(self.report_dir),
        ]

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        out = (self.workdir / f"{self.label}{self.runs}.out").open("wb")
        err = (self.workdir / f"{self.label}{self.runs}.err").open("wb")
        with out, err:
            env = {**os.environ, "COLUMNS": "200"}
            return subprocess.Popen(self.argv(), stdout=out, stderr=err, cwd=ROOT, env=env)

    def finish(self, process: subprocess.Popen[bytes], timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the process, reading the state file meanwhile; its exit code."""
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"rollout run did not finish in {timeout:g}s:\n{self.output()}"
                )
            self.state()
            time.sleep(0.1)
        return process.returncode

    def run(self, timeout: float = RUN_TIMEOUT) -> int:
        return self.finish(self.start(), timeout)

    def state(self) -> RolloutState | None:
        """The saved state, None before the first save; a torn file raises."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        self.reads += 1
        try:
            return state_from_json(text, str(self.state_path))
        except Exception as exc:
            raise TornStateError(f"unreadable state file during the run: {exc}") from exc

    def final_state(self) -> RolloutState:
        state = self.state()
        assert state is not None, self.output()
        return state

    def wait_for(
        self,
        process: subprocess.Popen[bytes],
        predicate: Callable[[RolloutState], bool],
        timeout: float = RUN_TIMEOUT,
        poll: float = 0.05,
    ) -> RolloutState:
        """Poll the state file until `predicate` holds; fail if the run ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state is not None and predicate(state):
                return state
            if process.poll() is not None:
                raise AssertionError(
                    f"rollout run exited {process.returncode} before the expected state:\n"
                    f"{self.output()}"
                )
            time.sleep(poll)
        raise AssertionError(f"the expected state did not come in {timeout:g}s:\n{self.output()}")

    def output(self) -> str:
        """stdout and stderr of every run so far."""
        return "\n".join(
            path.read_text(errors="replace")
            for n in range(1, self.runs + 1)
            for path in (
                self.workdir / f"{self.label}{n}.out",
                self.workdir / f"{self.label}{n}.err",
            )
            if path.exists()
        )


def kill9(process: subprocess.Popen[bytes]) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=30)


# ---------------------------------------------------------------------------- scenarios


@dataclass
class Outcome:
    """What one fault did to one rollout."""

    fault: str
    code: int  # the exit code of the last `rollout run`
    state: RolloutState  # the final saved state
    at_fault: RolloutState | None  # the state saved when the fault struck (a kill's leftover)
    weights: Weights  # HAProxy's read-back at the end
    answered: Counter[str]  # versions answering through HAProxy at the end
    recovery: float | None  # seconds from the fault's end (or start) to back on track
    output: str
    state_reads: int
    killed_code: int | None = None
    held: Weights | None = None  # HAProxy's weights while the fault lasted

    @property
    def changes(self) -> list[Weights]:
        return [c.weights for c in self.state.weight_changes]


def _outcome(
    fault: str,
    run: CliRun,
    code: int,
    recovery: float | None,
    at_fault: RolloutState | None = None,
    killed_code: int | None = None,
) -> Outcome:
    return Outcome(
        fault=fault,
        code=code,
        state=run.final_state(),
        at_fault=at_fault,
        weights=run.stack.router.get_weights(),
        answered=run.stack.answered_by(),
        recovery=recovery,
        output=run.output(),
        state_reads=run.reads,
        killed_code=killed_code,
    )


def _holding(state: RolloutState) -> bool:
    return (
        state.phase is Phase.PROGRESSING
        and state.step == 0
        and state.confirmed
        and len(state.history) >= 1
    )


def _resumed(state: RolloutState) -> bool:
    return state.confirmed and any("resumed" in note for note in state.notes)


def uninterrupted(stack: FaultStack, workdir: Path, name: str = "plain") -> Outcome:
    run = CliRun(stack, workdir, name)
    return _outcome("none", run, run.run(), None)


def _kill_and_resume(
    fault: str, run: CliRun, process: subprocess.Popen[bytes], before_resume: Callable[[], None]
) -> Outcome:
    killed = kill9(process)
    at_fault = run.final_state()
    before_resume()
    began = time.monotonic()
    again = run.start()
    run.wait_for(again, _resumed)
    recovery = time.monotonic() - began
    return _outcome(fault, run, run.finish(again), recovery, at_fault, killed)


def crash_during_hold(stack: FaultStack, workdir: Path) -> Outcome:
    """kill -9 while step 1 holds (between looks, or in one)."""
    run = CliRun(stack, workdir, "crash-hold")
    process = run.start()
    run.wait_for(process, lambda s: _holding(s) and "holding" in s.message)
    return _kill_and_resume("kill -9 during a hold", run, process, lambda: None)


def crash_during_analysis(stack: FaultStack, workdir: Path) -> Outcome:
    """kill -9 while a query of a look is in flight (the proxy holds it)."""
    proxy = stack.proxy
    assert proxy is not None
    run = CliRun(stack, workdir, "crash-look")
    process = run.start()
    run.wait_for(process, _holding)
    proxy.switch(Fault.HOLD)
    if not proxy.arrived.wait(timeout=60):
        raise AssertionError(f"no query reached Prometheus:\n{run.output()}")
    return _kill_and_resume(
        "kill -9 during an analysis", run, process, lambda: proxy.switch(Fault.NONE)
    )


def crash_after_weight_change(stack: FaultStack, workdir: Path) -> Outcome:
    """kill -9 once HAProxy has applied step 2's weights, before the run reads them back."""
    tap = stack.tap
    assert tap is not None
    tap.arm(lambda command: command == "set weight model/candidate 50")
    run = CliRun(stack, workdir, "crash-set")
    process = run.start()
    if not tap.tripped.wait(timeout=120):
        raise AssertionError(f"step 2's weights were never set:\n{run.output()}")
    return _kill_and_resume("kill -9 right after a weight change", run, process, tap.release)


def prometheus_short_outage(stack: FaultStack, workdir: Path, down: float = 3.0) -> Outcome:
    """Prometheus stopped during step 1 for less than the policy's limit, then started."""
    prometheus = stack.demo.prometheus
    assert prometheus is not None
    run = CliRun(stack, workdir, "prom-short")
    process = run.start()
    run.wait_for(process, _holding)
    prometheus.stop()
    run.wait_for(process, lambda s: s.source_outage is not None)
    held = stack.router.get_weights()
    time.sleep(down)
    prometheus.start()
    back = time.monotonic()
    looks = len(run.final_state().history)
    run.wait_for(process, lambda s: s.source_outage is None and len(s.history) > looks)
    recovery = time.monotonic() - back
    outcome = _outcome("Prometheus down < limit", run, run.finish(process), recovery)
    outcome.held = held
    return outcome


def prometheus_long_outage(stack: FaultStack, workdir: Path) -> Outcome:
    """Prometheus stopped during step 1 and kept down past the policy's limit."""
    prometheus = stack.demo.prometheus
    assert prometheus is not None
    run = CliRun(stack, workdir, "prom-long")
    process = run.start()
    run.wait_for(process, _holding)
    prometheus.stop()
    began = time.monotonic()
    run.wait_for(process, lambda s: s.phase is Phase.ROLLED_BACK and s.confirmed)
    recovery = time.monotonic() - began
    code = run.finish(process)
    prometheus.start()
    return _outcome("Prometheus down > limit", run, code, recovery)


def haproxy_restart(stack: FaultStack, workdir: Path) -> Outcome:
    """HAProxy killed during step 1 and started again from haproxy.cfg (100/0)."""
    haproxy = stack.demo.haproxy
    assert haproxy is not None
    run = CliRun(stack, workdir, "haproxy-restart", through_tap=False)
    process = run.start()
    run.wait_for(process, _holding)
    haproxy.kill()
    time.sleep(2.0)
    haproxy.start()
    back = time.monotonic()
    run.wait_for(
        process,
        lambda s: s.confirmed and len(s.weight_changes) >= 2 and s.weight_changes[1].weights == W20,
    )
    recovery = time.monotonic() - back
    return _outcome("HAProxy killed and restarted", run, run.finish(process), recovery)


def rollback_while_router_down(stack: FaultStack, workdir: Path, down: float = 21.0) -> Outcome:
    """Prometheus and HAProxy both die; the rollback is retried until HAProxy is back."""
    demo = stack.demo
    assert demo.prometheus is not None and demo.haproxy is not None
    run = CliRun(stack, workdir, "rollback-router", through_tap=False)
    process = run.start()
    run.wait_for(process, _holding)
    demo.haproxy.kill()
    demo.prometheus.stop()
    run.wait_for(process, lambda s: s.phase is Phase.ROLLED_BACK, timeout=down + 60)
    at_fault = run.final_state()
    time.sleep(max(0.0, down - OUTAGE_LIMIT))
    demo.haproxy.start()
    back = time.monotonic()
    run.wait_for(process, lambda s: s.confirmed)
    recovery = time.monotonic() - back
    code = run.finish(process)
    demo.prometheus.start()
    return _outcome("rollback while HAProxy is down", run, code, recovery, at_fault)


def bad_answers(stack: FaultStack, workdir: Path, fault: Fault) -> Outcome:
    """From step 1 on, every answer of Prometheus (through the proxy) has `fault`."""
    proxy = stack.proxy
    assert proxy is not None
    run = CliRun(stack, workdir, f"bad-{fault.value}")
    process = run.start()
    run.wait_for(process, _holding)
    proxy.switch(fault)
    began = time.monotonic()
    run.wait_for(process, lambda s: s.phase.decided and (s.confirmed or s.phase is Phase.PAUSED))
    recovery = time.monotonic() - began
    code = run.finish(process)
    proxy.switch(Fault.NONE)
    return _outcome(f"Prometheus answers: {fault.value}", run, code, recovery)
