"""`rollout demo`: the whole local stack on free loopback ports, and a real rollout on it.

The stack is real: a Prometheus (1 s scrape, exemplar storage), an HAProxy in front
of the v1 and v2 model servers, and an open-loop load through HAProxy. `DemoStack`
starts it and stops every process it started, by pid, on any exit (Ctrl-C included);
the end-to-end tests use the same class to run `rollout run` against it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType

import yaml
from rich.console import Console

from rollout.demo.haproxy import RunningHAProxy, start_haproxy
from rollout.demo.load import BackgroundLoad
from rollout.demo.procs import ManagedProcess, ProcessError, free_port
from rollout.demo.prom import RunningPrometheus, start_prometheus
from rollout.demo.server import ServerConfig, start_server
from rollout.evidence.render import FILE_NAMES
from rollout.evidence.traces import find_trace
from rollout.exit_codes import ExitCode
from rollout.routers.base import ALL_BASELINE

MODEL = "fraud-detector"
BASELINE_VERSION = "v1"
CANDIDATE_VERSION = "v2"
# What v2 does in each scenario: (latency factor, error rate).
SCENARIOS: dict[str, tuple[float, float]] = {
    "healthy": (1.0, 0.0),
    "latency": (2.0, 0.0),
    "errors": (1.0, 0.05),
}
# Exact counts need no second scrape (no increase()), but the rollout should not start
# before Prometheus (scraping every second) has sampled the servers under load: the first
# look then counts from a sample at its start rather than everything the baseline served
# before, and the pre-start check of the baseline's buckets has a histogram to read.
WARMUP_SECONDS = 4.0


@dataclass(frozen=True)
class StackFiles:
    workdir: Path
    spans: dict[str, Path]  # version -> the JSON-lines span file its server writes
    pids: Path  # pids.json: every process the stack started


class DemoStack:
    """v1 and v2 model servers, HAProxy (all traffic on v1), Prometheus, and load."""

    def __init__(
        self,
        workdir: Path,
        scenario: str,
        rps: float,
        seed: int = 0,
        *,
        candidate_error_rate: float | None = None,
        candidate_latency_factor: float | None = None,
    ) -> None:
        """`candidate_error_rate` and `candidate_latency_factor` replace the scenario's (a test
        that needs a larger effect: on a busy machine every request waits for a core, which
        shrinks a x2 slowdown toward x1.4)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: one of {sorted(SCENARIOS)}")
        self.workdir = workdir
        self.scenario = scenario
        self.candidate_error_rate = candidate_error_rate
        self.candidate_latency_factor = candidate_latency_factor
        self.rps = rps
        self.seed = seed
        self.files = StackFiles(
            workdir=workdir,
            spans={v: workdir / f"spans-{v}.jsonl" for v in (BASELINE_VERSION, CANDIDATE_VERSION)},
            pids=workdir / "pids.json",
        )
        self.servers: dict[str, ManagedProcess] = {}
        self.addresses: dict[str, str] = {}  # version -> its server's host:port
        self.haproxy: RunningHAProxy | None = None
        self.prometheus: RunningPrometheus | None = None
        self.load: BackgroundLoad | None = None
        self.load_process: ManagedProcess | None = None  # the load, when it runs detached

    def start(self, *, load_seconds: float = 900.0, detached_load: bool = False) -> DemoStack:
        """Start every part and return once they answer; on any failure stop what started.

        The load runs in a thread of this process, or with `detached_load` in a process of
        its own (`python -m rollout.demo.load`), so the stack outlives this one.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        latency_factor, error_rate = SCENARIOS[self.scenario]
        if self.candidate_error_rate is not None:
            error_rate = self.candidate_error_rate
        if self.candidate_latency_factor is not None:
            latency_factor = self.candidate_latency_factor
        try:
            addresses = self.addresses
            for i, version in enumerate((BASELINE_VERSION, CANDIDATE_VERSION)):
                port = free_port()
                candidate = version == CANDIDATE_VERSION
                config = ServerConfig(
                    model=MODEL,
                    version=version,
                    port=port,
                    latency_factor=latency_factor if candidate else 1.0,
                    error_rate=error_rate if candidate else 0.0,
                    spans_file=self.files.spans[version],
                    seed=self.seed * 10 + i,
                )
                self.servers[version] = start_server(config, self.workdir / f"server-{version}.log")
                addresses[version] = f"127.0.0.1:{port}"
            self.haproxy = start_haproxy(
                self.workdir / "haproxy",
                addresses[BASELINE_VERSION],
                addresses[CANDIDATE_VERSION],
                ALL_BASELINE,
            )
            self.prometheus = start_prometheus(
                self.workdir / "prometheus", {"model-servers": list(addresses.values())}
            )
            url = f"{self.haproxy.url}/predict"
            if detached_load:
                self.load_process = ManagedProcess(
                    "load generator", self.load_argv(url, load_seconds), self.workdir / "load.log"
                ).start()
            else:
                self.load = BackgroundLoad(url, self.rps, load_seconds, seed=self.seed).start()
            self._write_pids()
            time.sleep(WARMUP_SECONDS)
        except BaseException:
            self.stop()
            raise
        return self

    def load_argv(self, url: str, seconds: float) -> list[str]:
        """The command line of a load generator process for this stack."""
        return [
            sys.executable, "-m", "rollout.demo.load", "--url", url, "--rps", repr(self.rps),
            "--duration", repr(seconds), "--seed", str(self.seed),
        ]  # fmt: skip

    def processes(self) -> dict[str, ManagedProcess]:
        """Every process this stack started, by name (a load thread is no process)."""
        started = {f"server-{v}": p for v, p in self.servers.items()}
        if self.haproxy is not None:
            started["haproxy"] = self.haproxy.process
        if self.prometheus is not None:
            started["prometheus"] = self.prometheus.process
        if self.load_process is not None:
            started["load"] = self.load_process
        return started

    def _write_pids(self) -> None:
        pids = {name: p.pid for name, p in self.processes().items()}
        self.files.pids.write_text(json.dumps(pids, indent=2))

    def trace_link_template(self) -> str:
        """Where a candidate trace's spans are: the JSON-lines file v2's server writes, one
        span a line (`grep TRACE_ID` finds a trace's); no trace UI runs on this stack."""
        return self.files.spans[CANDIDATE_VERSION].resolve().as_uri() + "#trace_id={trace_id}"

    def spec_document(self, policy: str = "demo", name: str | None = None) -> dict[str, object]:
        """The ModelRollout a user would write for this stack."""
        if self.haproxy is None or self.prometheus is None:
            raise ProcessError("the demo stack is not started")
        router = self.haproxy.router_config().model_dump(mode="json", by_alias=True)
        return {
            "apiVersion": "rollout.mlops.dev/v1alpha1",
            "kind": "ModelRollout",
            "metadata": {"name": name or f"demo-{self.scenario}"},
            "spec": {
                "model": MODEL,
                "baseline": {"version": BASELINE_VERSION},
                "candidate": {"version": CANDIDATE_VERSION},
                "router": router,
                "prometheus": {"url": self.prometheus.url},
                "policy": policy,
                "evidence": {"traceLinkTemplate": self.trace_link_template()},
            },
        }

    def write_spec(self, path: Path, policy: str = "demo", name: str | None = None) -> Path:
        path.write_text(yaml.safe_dump(self.spec_document(policy, name), sort_keys=False))
        return path

    def stop(self) -> None:
        """Stop everything this stack started, by pid; safe to call twice."""
        if self.load is not None:
            with contextlib.suppress(Exception):
                self.load.stop(timeout=15)
        if self.load_process is not None:
            with contextlib.suppress(Exception):
                self.load_process.stop()
        for running in (self.prometheus, self.haproxy):
            if running is not None:
                with contextlib.suppress(Exception):
                    running.stop()
        for process in self.servers.values():
            with contextlib.suppress(Exception):
                process.stop()

    def __enter__(self) -> DemoStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_demo(
    scenario: str, *, rps: float, report_dir: Path | None, console: Console, seed: int = 0
) -> ExitCode:
    """Start the stack, roll v2 out with the `demo` policy, stop the stack; the outcome's code."""
    from rollout.driver import run_from_spec
    from rollout.spec import load_spec

    latency_factor, error_rate = SCENARIOS[scenario]
    console.print(
        f"[bold]demo[/] scenario [cyan]{scenario}[/]: v2 latency x{latency_factor:g}, "
        f"errors {error_rate:.0%}; {rps:g} requests/s through HAProxy"
    )
    reports = report_dir if report_dir is not None else Path("reports") / f"demo-{scenario}"
    workdir = reports / "stack"
    # A demo always starts afresh: an old run's state would be resumed, not re-run.
    shutil.rmtree(workdir, ignore_errors=True)
    began = time.time()
    try:
        with sigterm_as_interrupt(), DemoStack(workdir, scenario, rps, seed).start() as stack:
            console.print(
                f"stack up: HAProxy {stack.haproxy.url if stack.haproxy else '?'}, "
                f"Prometheus {stack.prometheus.url if stack.prometheus else '?'}"
            )
            spec, policy = load_spec(stack.write_spec(workdir / "rollout.yaml"))
            code = run_from_spec(
                spec,
                policy,
                state_dir=workdir / "state",
                report_dir=reports,
                console=console,
                spans_lookup=partial(find_trace, list(stack.files.spans.values())),
                on_interrupt="the demo's processes are stopped now; `rollout demo` starts afresh",
            )
            if stack.load is not None:
                counts = stack.load.snapshot()
                console.print(f"load answered per version so far: {dict(counts.by_version)}")
            spans = ", ".join(str(path) for path in stack.files.spans.values())
            console.print(f"spans (JSON lines; the reports' trace links point into them): {spans}")
    except ProcessError as exc:
        console.print(f"[red]the local stack did not start:[/] {exc}")
        return ExitCode.INFRASTRUCTURE
    except KeyboardInterrupt:
        console.print(
            f"interrupted (exit {int(ExitCode.PAUSED)}): nothing decided, no report written; "
            "every process the demo started is stopped"
        )
        return ExitCode.PAUSED
    written = _written_since(reports, began)
    if written:
        console.print(f"reports: {', '.join(str(p) for p in written)}")
        page = reports / FILE_NAMES["html"]
        if page in written:  # last: the one line a person copies into a browser
            console.print(
                f"open in a browser: {page.resolve()}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    else:
        console.print("no report was written: the rollout did not reach a decision")
    return code


def _written_since(directory: Path, since: float) -> list[Path]:
    """The report files in `directory` written by this run (not an earlier demo's)."""
    found = []
    for name in FILE_NAMES.values():
        path = directory / name
        with contextlib.suppress(OSError):
            if path.stat().st_mtime >= since - 1.0:
                found.append(path)
    return found


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does: every process it started is stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
