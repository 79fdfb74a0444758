"""`rollout sandbox up|status|down`: the demo's local stack, left running to try the CLI on.

`up` starts the same `DemoStack` as `rollout demo` (two model servers, HAProxy, Prometheus)
with the load in a process of its own, so every part outlives the command; it records each
process in `DIR/sandbox.json` (pid, start time and command line, address), waits until
Prometheus has scraped both versions and HAProxy answers, writes `DIR/rollout.yaml` and
prints it with the commands to try. `down` stops the recorded processes by pid, only
those that are still the processes `up` started, and removes the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from rollout.demo.launcher import (
    BASELINE_VERSION,
    CANDIDATE_VERSION,
    MODEL,
    SCENARIOS,
    DemoStack,
    sigterm_as_interrupt,
)
from rollout.demo.procs import ProcessError, process_identity, stop_recorded
from rollout.exit_codes import ExitCode

DEFAULT_DIR = Path(".rollout-sandbox")
RECORD = "sandbox.json"
LOAD_SECONDS = 24 * 3600.0  # the load ends by itself after a day, should `down` be forgotten
READY_TIMEOUT = 60.0
STOP_ORDER = ("load", "prometheus", "haproxy", f"server-{CANDIDATE_VERSION}")
INTERRUPTED = ExitCode.PAUSED  # as for `run` and `demo`: nothing was left running


@dataclass(frozen=True)
class Recorded:
    """A process `up` started: it is ours while its identity is still the recorded one."""

    name: str
    pid: int
    identity: str
    address: str

    def running(self) -> bool:
        return process_identity(self.pid) == self.identity


def _shown(path: Path) -> str:
    return shlex.quote(str(path))


def read_record(directory: Path) -> dict[str, Any] | None:
    """The sandbox record in `directory`, None when there is none (or it is unreadable)."""
    try:
        data = json.loads((directory / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_processes(record: dict[str, Any]) -> list[Recorded]:
    """The record's processes, in the order `down` stops them (load first, servers last)."""
    found = [
        Recorded(name, int(p["pid"]), str(p["identity"]), str(p.get("address", "")))
        for name, p in dict(record.get("processes", {})).items()
    ]
    return sorted(found, key=lambda r: (*STOP_ORDER, r.name).index(r.name))


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[bool]:
    """Hold DIR/.lock while `up` or `down` works there; False when another command holds it."""
    with open(directory / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _busy(directory: Path, console: Console) -> ExitCode:
    console.print(
        f"another `rollout sandbox` command is working in {directory} right now; "
        f"try again when it is done (exit {int(ExitCode.BAD_INPUT)})",
        markup=False,
    )
    return ExitCode.BAD_INPUT


def sandbox_up(directory: Path, scenario: str, rps: float, console: Console) -> ExitCode:
    """Start the stack detached and print the spec and commands; 3 if one is up, 4 if a part
    cannot start (everything started is stopped then)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: one of {sorted(SCENARIOS)}")
    root = directory.resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        console.print(f"--dir {directory}: {exc} (exit {int(ExitCode.BAD_INPUT)})", markup=False)
        return ExitCode.BAD_INPUT
    with _exclusive(root) as mine:
        if not mine:
            return _busy(directory, console)
        record = read_record(root)
        if record is not None:
            alive = [p for p in recorded_processes(record) if p.running()]
            if alive:
                names = ", ".join(f"{p.name} (pid {p.pid})" for p in alive)
                console.print(
                    f"a sandbox is already up in {directory}: {names}. Use it (its spec is "
                    f"{directory / 'rollout.yaml'}), or stop it first: rollout sandbox down "
                    f"--dir {_shown(directory)} (exit {int(ExitCode.BAD_INPUT)})",
                    markup=False,
                )
                return ExitCode.BAD_INPUT
            console.print(
                f"an earlier sandbox in {directory} is no longer running: starting afresh"
            )
        _clear(root)
        code = _start(root, directory, scenario, rps, console)
    return code


def _clear(root: Path) -> None:
    """Forget an earlier sandbox: its record, processes' files, rollout state and spec."""
    (root / RECORD).unlink(missing_ok=True)
    (root / "rollout.yaml").unlink(missing_ok=True)
    for owned in ("stack", "state"):
        shutil.rmtree(root / owned, ignore_errors=True)


def _start(root: Path, directory: Path, scenario: str, rps: float, console: Console) -> ExitCode:
    latency_factor, error_rate = SCENARIOS[scenario]
    console.print(
        f"[bold]sandbox[/] scenario [cyan]{scenario}[/]: v2 latency x{latency_factor:g}, "
        f"errors {error_rate:.0%}; {rps:g} requests/s through HAProxy; starting in {directory}"
    )
    stack = DemoStack(root / "stack", scenario, rps)
    try:
        with sigterm_as_interrupt():
            stack.start(load_seconds=LOAD_SECONDS, detached_load=True)
            _write_record(root, stack, scenario, rps)
            _wait_ready(stack)
            spec = stack.write_spec(root / "rollout.yaml", name=f"sandbox-{scenario}")
    except ProcessError as exc:
        _abandon(root, stack)
        console.print(
            f"[red]the sandbox did not start[/] (exit 4); every process it started is stopped, "
            f"their logs are in {directory / 'stack'}:\n{exc}",
            highlight=False,
        )
        return ExitCode.INFRASTRUCTURE
    except KeyboardInterrupt:
        _abandon(root, stack)
        console.print(
            f"interrupted (exit {int(INTERRUPTED)}): every process the sandbox started is stopped"
        )
        return INTERRUPTED
    _print_ready(directory, spec, stack, rps)
    return ExitCode.PROMOTED


def _abandon(root: Path, stack: DemoStack) -> None:
    """Stop what a failed or interrupted `up` started; keep the logs, drop the record."""
    stack.stop()
    (root / RECORD).unlink(missing_ok=True)
    (root / "stack" / "pids.json").unlink(missing_ok=True)


def _write_record(root: Path, stack: DemoStack, scenario: str, rps: float) -> None:
    assert stack.haproxy is not None and stack.prometheus is not None
    addresses = {
        **{f"server-{v}": a for v, a in stack.addresses.items()},
        "haproxy": stack.haproxy.url,
        "prometheus": stack.prometheus.url,
        "load": f"{stack.haproxy.url}/predict",
    }
    processes = {}
    for name, process in stack.processes().items():
        identity = process_identity(process.pid)
        if identity is None:
            raise ProcessError(f"{name} exited right after it started:\n{process.log_tail()}")
        processes[name] = {"pid": process.pid, "identity": identity, "address": addresses[name]}
    record = {
        "scenario": scenario,
        "rps": rps,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "prometheus": stack.prometheus.url,
        "haproxy": stack.haproxy.url,
        "router": stack.haproxy.router_config().model_dump(mode="json", by_alias=True),
        "spans": {v: str(p) for v, p in stack.files.spans.items()},
        "processes": processes,
    }
    path = root / RECORD
    path.with_suffix(".tmp").write_text(json.dumps(record, indent=2))
    path.with_suffix(".tmp").replace(path)


def _wait_ready(stack: DemoStack, timeout: float = READY_TIMEOUT) -> None:
    """Until Prometheus has scraped both versions, v1 has answered the load through HAProxy
    and HAProxy answers; a process that dies meanwhile fails at once, with its log."""
    assert stack.haproxy is not None and stack.prometheus is not None
    query = f'sum by (model_version) (inference_requests_total{{model_name="{MODEL}"}})'
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        for name, process in stack.processes().items():
            if not process.alive():
                raise ProcessError(f"{name} exited during start-up:\n{process.log_tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            answer = httpx.get(
                f"{stack.prometheus.url}/api/v1/query", params={"query": query}, timeout=2.0
            ).json()
            seen = {
                r["metric"]["model_version"]: float(r["value"][1]) for r in answer["data"]["result"]
            }
            served = httpx.get(f"{stack.haproxy.url}/healthz", timeout=2.0).status_code == 200
            if served and seen.get(BASELINE_VERSION, 0) > 0 and CANDIDATE_VERSION in seen:
                return
        time.sleep(0.5)
    raise ProcessError(
        f"not ready after {timeout:.0f}s: Prometheus has requests per version {seen or 'none'} "
        f"(wanted both {BASELINE_VERSION} with requests and {CANDIDATE_VERSION}); logs in "
        f"{stack.workdir}"
    )


def _print_ready(directory: Path, spec: Path, stack: DemoStack, rps: float) -> None:
    assert stack.haproxy is not None and stack.prometheus is not None
    d = directory
    spec_shown = _shown(d / "rollout.yaml")
    state = f"--state-dir {_shown(d / 'state')}"
    reports = f"--report-dir {_shown(d / 'reports')}"
    lines = [
        f"sandbox up in {d}: HAProxy {stack.haproxy.url} (all traffic on {BASELINE_VERSION}), "
        f"Prometheus {stack.prometheus.url}, model servers {BASELINE_VERSION} and "
        f"{CANDIDATE_VERSION}, {rps:g} requests/s of load (for up to "
        f"{LOAD_SECONDS / 3600:g} h)",
        f"spans (JSON lines; the reports' trace links point into them): "
        f"{', '.join(str(p) for p in stack.files.spans.values())}",
        "",
        f"# {d / spec.name}",
        spec.read_text().rstrip(),
        "",
        "Try:",
        f"  rollout run {spec_shown} {state} {reports}",
        "      # moves traffic to v2 step by step and decides; Ctrl-C stops it, the same "
        "command resumes",
        f"  rollout gate --prometheus-url {stack.prometheus.url} --model {MODEL} "
        f"--baseline {BASELINE_VERSION} --candidate {CANDIDATE_VERSION} --policy demo "
        "--window 1m",
        "      # the CI gate on the last minute (v2 has traffic once `run` has moved some); its"
        " trace links assume a Jaeger: the traces are in the spans files above",
        f"  rollout abort {spec_shown} {state} {reports}",
        "      # after a Ctrl-C'd or paused run: all traffic back to v1, with a report",
        f"  rollout sandbox status --dir {_shown(d)}",
        f"  rollout sandbox down --dir {_shown(d)}",
    ]
    # Plain print: the YAML and the paths must come out exactly as they are.
    for line in lines:
        print(line)


def sandbox_status(directory: Path, console: Console) -> ExitCode:
    """What runs in the sandbox and where HAProxy sends traffic: 0 all up, 3 no sandbox,
    4 some part has stopped."""
    record = read_record(directory.resolve())
    if record is None:
        console.print(f"no sandbox in {directory}", markup=False)
        return ExitCode.BAD_INPUT
    processes = recorded_processes(record)
    down = [p for p in processes if not p.running()]
    console.print(
        f"sandbox in {directory}: scenario {record.get('scenario')}, started "
        f"{record.get('started')}",
        markup=False,
    )
    for p in processes:
        state = "running" if p not in down else "not running"
        console.print(f"  {p.name:<10} pid {p.pid:<8} {state:<12} {p.address}", markup=False)
    console.print(f"  weights: {_weights(record)}", markup=False)
    return ExitCode.INFRASTRUCTURE if down else ExitCode.PROMOTED


def _weights(record: dict[str, Any]) -> str:
    from rollout.routers.haproxy import HAProxyRouter
    from rollout.spec import HAProxyRouterConfig

    try:
        router = HAProxyRouter(HAProxyRouterConfig.model_validate(record["router"]))
        weights = router.get_weights()
    except Exception as exc:  # status reports, it does not fail on a router it cannot read
        return f"cannot be read ({type(exc).__name__}: {exc})"
    return f"{BASELINE_VERSION} {weights.baseline}%, {CANDIDATE_VERSION} {weights.candidate}%"


def sandbox_down(directory: Path, console: Console) -> ExitCode:
    """Stop every recorded process that is still ours, wait for it, remove the record;
    0 also when nothing was running."""
    root = directory.resolve()
    if root.is_dir():  # else nothing to stop, and nothing to create
        with _exclusive(root) as mine:
            if not mine:
                return _busy(directory, console)
            record = read_record(root)
            if record is not None:
                return _stop(root, directory, record, console)
    console.print(f"no sandbox is up in {directory}: nothing to stop", markup=False)
    return ExitCode.PROMOTED


def _stop(root: Path, directory: Path, record: dict[str, Any], console: Console) -> ExitCode:
    """Stop the recorded processes (the caller holds the lock) and say which."""
    stopped: list[Recorded] = []
    gone: list[Recorded] = []
    for p in recorded_processes(record):
        try:
            (stopped if stop_recorded(p.pid, p.identity) else gone).append(p)
        except ProcessError as exc:
            console.print(f"{p.name}: {exc}; the record {root / RECORD} is kept (exit 4)")
            return ExitCode.INFRASTRUCTURE
    _remove_files(root, record)
    if stopped:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in stopped)
        console.print(f"stopped: {names}", markup=False)
    if gone:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in gone)
        console.print(f"not running any more (left alone): {names}", markup=False)
    if not stopped:
        console.print(f"nothing was running in {directory}", markup=False)
    console.print(
        f"sandbox in {directory} is down; its logs and reports stay there "
        f"(`rollout sandbox up --dir {_shown(directory)}` starts afresh)",
        markup=False,
    )
    return ExitCode.PROMOTED


def _remove_files(root: Path, record: dict[str, Any]) -> None:
    """The pid files, and HAProxy's socket dir when it had to live in the temp dir."""
    (root / RECORD).unlink(missing_ok=True)
    (root / "stack" / "pids.json").unlink(missing_ok=True)
    socket = Path(str(dict(record.get("router", {})).get("adminSocket", "")))
    parent = socket.parent
    if parent.name.startswith("rollout-haproxy-") and parent.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(parent, ignore_errors=True)
