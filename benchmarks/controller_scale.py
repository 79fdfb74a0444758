"""Many rollouts in one process: the controller's core against a real Prometheus (issue 9).

    .venv/bin/python benchmarks/controller_scale.py [--rollouts 100,300,1000] [--minutes 3]
        [--write]

Per N: a synthetic exporter (benchmarks/scale_exporter.py, its own process) exposes N models'
two versions in the metrics contract (68 series per version: requests by status and the kit's
histogram), a real Prometheus scrapes it every 15 s, and one process drives N rollouts with the
code `rollout controller` runs: `Reconciler(batch_looks=True)` on a `LocalStateStore` (atomic
writes, fsynced unless a save only adds looks), the `Scheduler` with 16 workers and
`read_looks` as its idle work, one shared `PrometheusSource`, routers that record weights.
Analysis interval 10 s, one step held for longer than the run (the measure is the ticks, not
the decisions). Each N runs in a fresh process (`--one N`) so its RSS is its own.

Measured from the second look on (the first reads the full 5-minute range for every rollout):
- on time: the share of looks taken within 1 s of their due time (the interval's grid
  point): the look's end, the moment its data was cut and its query sent, for every rollout
  due then (one batched read); and, stricter, the share whose result (judged and saved) was
  there before the next look was due ("kept up"), with how late results were;
- tick cost per rollout: its two reconciles (ask: read the router; answer: judge,
  save) plus its share of the batch read, p50 and p95;
- queries per tick: HTTP queries to Prometheus in each interval of the grid (all rollouts,
  every batched read started in it), on every tick including the first looks': both
  signals' samples (one query), which series still exist, and the first looks' 5 minutes of
  samples; a rollout that asks after its tick's read (its last answer not judged yet) is
  read in a second batch, and its queries count in the same tick; "reads" is how many
  batched reads there were, to compare with the ticks;
- CPU: this process' user + system time over wall time (100% = one core), and Prometheus';
- RSS: peak resident memory of this process, and what each look of a rollout keeps (its
  numbers in the state's history, objects walked with shared ones counted once, and its
  packed row in the store), from which the peak at 120 looks is projected;
- state: bytes of each rollout's state file after the run, and per look.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.scale_exporter import VERSIONS, model_name  # noqa: E402
from rollout.analysis.observation import Exemplar, Observation, Target  # noqa: E402
from rollout.analysis.prometheus import SourceRegistry  # noqa: E402
from rollout.demo.prom import free_port, start_prometheus  # noqa: E402
from rollout.engine import Looked, Started, look_due_after  # noqa: E402
from rollout.reconcile import (  # noqa: E402
    ASKED_FOR_LOOK,
    Advanced,
    EvidenceSettings,
    Reconciler,
    Rollout,
    SystemClock,
)
from rollout.routers.base import ALL_BASELINE, Weights  # noqa: E402
from rollout.scheduler import Scheduler  # noqa: E402
from rollout.spec import Policy, PrometheusConfig  # noqa: E402
from rollout.state import LocalQueryLog, LocalStateStore, RolloutState  # noqa: E402

INTERVAL = 10.0
SCRAPE = "15s"
WORKERS = 16  # threads: the work is I/O (file writes, HTTP); the GIL serialises the rest
RESULTS = ROOT / "benchmarks" / "results" / "controller_scale.md"
TARGETS = {"on_time": 0.99, "queries": 3, "rss_mb": 1024, "state_kb": 64}
POLICY = Policy.model_validate(
    {"steps": [{"weight": 50, "hold": "2h"}], "analysis": {"interval": INTERVAL}}
)


class RecordingRouter:
    """Weights kept in memory: the router costs nothing, its calls are counted."""

    def __init__(self) -> None:
        self.weights: Weights = ALL_BASELINE
        self.calls = 0

    def get_weights(self) -> Weights:
        self.calls += 1
        return self.weights

    def set_weights(self, weights: Weights) -> None:
        self.calls += 1
        self.weights = weights

    def verify(self, weights: Weights) -> bool | None:
        return self.weights == weights


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.queries += 1
        return super().handle_request(request)


@dataclass
class TimedSource:
    """The shared source, timing each batched read and counting its queries."""

    inner: Any
    transport: CountingTransport
    reads: list[tuple[float, float, int, int]] = field(default_factory=list)  # at, s, n, q

    def observe(
        self, target: Target, start: float, end: float, *, custom_window: float | None = None
    ) -> Observation:
        return self.observe_many((target,), start, end, custom_window=custom_window)[target]

    def observe_many(
        self,
        targets: Iterable[Target],
        start: float | Mapping[Target, float],
        end: float,
        *,
        custom_window: float | Mapping[Target, float] | None = None,
    ) -> dict[Target, Observation]:
        batch = list(targets)
        queries, began, at = self.transport.queries, time.perf_counter(), time.time()
        looks = self.inner.observe_many(batch, start, end, custom_window=custom_window)
        spent = time.perf_counter() - began
        self.reads.append((at, spent, len(batch), self.transport.queries - queries))
        result: dict[Target, Observation] = looks
        return result

    def exemplars(self, *args: Any, **kwargs: Any) -> tuple[Exemplar, ...]:
        return ()

    def close(self) -> None:
        self.inner.close()


def _cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kept_bytes_per_look(states: list[RolloutState], store: LocalStateStore) -> float:
    """What one look of one rollout keeps in memory: its numbers in the state's history
    (objects walked, each shared one counted once) and its packed row in the state store."""
    seen: set[int] = set()
    total = looks = 0

    def add(thing: object) -> bool:
        nonlocal total
        if id(thing) in seen:
            return False
        seen.add(id(thing))
        total += sys.getsizeof(thing)
        return True

    for state in states:
        for look in state.history:
            looks += 1
            add(look)
            for counts in (look.baseline, look.candidate):
                if add(counts) and counts.buckets is not None and add(counts.buckets):
                    for bucket in counts.buckets:
                        if add(bucket):
                            add(bucket.le)
                            add(bucket.count)
                add(counts.requests)
                add(counts.errors)
            add(look.problems)
            add(look.custom)
        # the packer keeps each saved look's row of text, so a save encodes only new looks
        total += sum(map(sys.getsizeof, store.file(state.name)._packer._rows))
    return total / max(1, looks)


def _wait_for_series(url: str, expected: int, timeout: float = 180.0) -> None:
    """Until Prometheus holds two scrapes of every requests series."""
    deadline = time.monotonic() + timeout
    promql = "count(count_over_time(inference_requests_total[1m]) >= 2)"
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=30).json()
        result = answer["data"]["result"]
        if result and int(float(result[0]["value"][1])) >= expected:
            return
        time.sleep(2)
    raise RuntimeError(f"Prometheus at {url} did not scrape {expected} series in {timeout:.0f} s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_one(n: int, minutes: float, workdir: Path) -> dict[str, Any]:
    """Drive `n` rollouts for `minutes`; the measures of this run."""
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "scale_exporter.py"), "--models", str(n),
         "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    prometheus = start_prometheus(
        workdir / "prometheus", {"scale": [f"127.0.0.1:{port}"]}, scrape_interval=SCRAPE,
        exemplars=False,
    )  # fmt: skip
    try:
        _wait_for_series(prometheus.url, n * len(VERSIONS) * 2)
        return _drive(n, minutes, workdir, prometheus.url, prometheus.process.pid)
    finally:
        prometheus.stop()
        exporter.terminate()
        exporter.wait(timeout=30)


def _drive(n: int, minutes: float, workdir: Path, url: str, prometheus_pid: int) -> dict[str, Any]:
    transport = CountingTransport()
    registry = SourceRegistry(transport=transport)
    source = TimedSource(registry.source(PrometheusConfig(url=url, timeout=60)), transport)
    clock = SystemClock()
    state_dir = workdir / "state"
    store = LocalStateStore(state_dir)
    reconciler = Reconciler(store, clock, LocalQueryLog(state_dir), batch_looks=True)
    asked: dict[str, float] = {}  # the ask reconcile's cost, per key
    costs: list[float] = []  # judge + persist + ask, per look (the read's share added later)
    taken: list[float] = []  # the look's end (its data cut) after its due time
    lateness: list[float] = []  # its result (judged, saved) after its due time
    measured_from = look_due_after(time.time(), INTERVAL) + INTERVAL  # the second look on
    lock = threading.Lock()

    def step(key: str) -> float | None:
        began = time.perf_counter()
        outcome = reconciler.reconcile(key)
        spent = time.perf_counter() - began
        with lock:
            if outcome.wake_at == ASKED_FOR_LOOK:
                asked[key] = spent
            for happened in outcome.happened:
                if isinstance(happened, Advanced) and isinstance(happened.event, Looked):
                    observation = happened.event.observation
                    due = look_due_after(observation.start, INTERVAL)
                    if due >= measured_from:
                        taken.append(observation.end - due)
                        lateness.append(time.time() - due)
                        costs.append(spent + asked.pop(key, 0.0))
        return outcome.wake_at

    scheduler = Scheduler(step, clock, workers=WORKERS, on_idle=reconciler.read_looks)
    keys = [f"default-{model_name(i)}" for i in range(n)]
    for i, key in enumerate(keys):
        target = Target(model_name(i), VERSIONS[0], VERSIONS[1])
        rollout = Rollout(key, key, target, POLICY, RecordingRouter(), source, EvidenceSettings(""))
        reconciler.track(rollout, Started(), RolloutState.new(key, target, "bench", clock.now()))
        scheduler.add(key)
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    time.sleep(max(0.0, measured_from - time.time()))
    cpu0, prom0, wall0 = _cpu_seconds(), _cpu_seconds(prometheus_pid), time.time()
    time.sleep(minutes * 60)
    cpu1, prom1, wall1 = _cpu_seconds(), _cpu_seconds(prometheus_pid), time.time()
    stop.set()
    runner.join(timeout=120)
    reads = [r for r in source.reads if r[0] >= measured_from - 1]
    share = statistics.mean(seconds / size for _, seconds, size, _ in reads) if reads else 0.0
    per_tick: dict[int, int] = {}  # the grid's interval a read started in: its queries
    for at, _, _, queries in source.reads:
        tick = math.floor(at / INTERVAL)
        per_tick[tick] = per_tick.get(tick, 0) + queries
    per_rollout = [c + share for c in costs]
    sizes = [p.stat().st_size for p in state_dir.glob("*.json")]
    states = [s for key in keys if (s := reconciler.state(key))]
    looks = [len(s.history) for s in states]
    without_data = sum(1 for s in states for o in s.history if o.problems)
    registry.close()
    return {
        "rollouts": n,
        "looks": len(lateness),
        "on_time": sum(1 for late in taken if late <= 1.0) / max(1, len(taken)),
        "taken_p95": _percentile(taken, 0.95),
        "kept_up": sum(1 for late in lateness if late < INTERVAL) / max(1, len(lateness)),
        "late_p50": _percentile(lateness, 0.5),
        "late_p95": _percentile(lateness, 0.95),
        "late_max": max(lateness, default=float("nan")),
        "cost_p50_ms": 1000 * _percentile(per_rollout, 0.5),
        "cost_p95_ms": 1000 * _percentile(per_rollout, 0.95),
        "read_p50_s": _percentile([s for _, s, _, _ in reads], 0.5),
        "read_max_s": max((s for _, s, _, _ in reads), default=float("nan")),
        # every tick, the first looks' too: the target is a bound on all of them
        "queries_per_tick_max": max(per_tick.values(), default=0),
        "queries_per_tick_mean": statistics.mean(per_tick.values()) if per_tick else 0.0,
        "ticks": len(per_tick),
        "reads": len(source.reads),
        "cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "prometheus_cpu_pct": 100 * (prom1 - prom0) / (wall1 - wall0),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "kept_kb_per_look": _kept_bytes_per_look(states, store) / 1024,
        "state_kb_max": max(sizes, default=0) / 1024,
        "state_kb_mean": statistics.mean(sizes) / 1024 if sizes else 0.0,
        "looks_per_rollout": statistics.mean(looks) if looks else 0.0,
        "looks_without_data": without_data,
    }


def _at_120_looks(row: dict[str, Any]) -> float:
    """The peak RSS with every rollout's history grown to 120 looks (a 20-minute rollout at
    a 10 s interval), at what a look keeps."""
    more = max(0.0, 120 - row["looks_per_rollout"])
    return float(row["rss_mb"] + more * row["rollouts"] * row.get("kept_kb_per_look", 0.0) / 1024)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(rows: list[dict[str, Any]], command: str, minutes: float) -> str:
    biggest = max(rows, key=lambda r: r["rollouts"])
    lines = [
        "# Controller scale: many rollouts in one process",
        "",
        f"Command: `{command}` ({platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average before the run "
        f"{os.getloadavg()[0]:.1f}). {minutes:g} minutes per N, analysis interval "
        f"{INTERVAL:g} s, Prometheus scraping every {SCRAPE}, {WORKERS} workers. "
        "How it is measured: the docstring of benchmarks/controller_scale.py.",
        "",
        "| rollouts | looks | on time (taken <= 1 s late) | results kept up / late p50, p95, "
        "max (s) | tick cost per rollout p50 / p95 (ms) | batched read p50 / max (s) | queries "
        "per tick (max / mean) | CPU (this / Prometheus) | RSS (MB) | state per rollout (mean / "
        "max KB, looks) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["rollouts"]):
        lines.append(
            f"| {r['rollouts']} | {r['looks']} | {100 * r['on_time']:.2f}% | "
            f"{100 * r['kept_up']:.1f}% / {r['late_p50']:.1f}, {r['late_p95']:.1f}, "
            f"{r['late_max']:.1f} | "
            f"{r['cost_p50_ms']:.1f} / {r['cost_p95_ms']:.1f} | "
            f"{r['read_p50_s']:.2f} / {r['read_max_s']:.2f} | "
            f"{r['queries_per_tick_max']} / {r['queries_per_tick_mean']:.1f} "
            f"({r.get('reads', r['ticks'])} reads in {r['ticks']} ticks) | "
            f"{r['cpu_pct']:.0f}% / {r['prometheus_cpu_pct']:.0f}% | {r['rss_mb']:.0f} | "
            f"{r['state_kb_mean']:.1f} / {r['state_kb_max']:.1f} ({r['looks_per_rollout']:.0f}) |"
        )
    lost = sum(r.get("looks_without_data", 0) for r in rows)
    lines += ["", f"Looks without data (a query that lost a version), all runs: {lost}."]
    n = biggest["rollouts"]
    lines += [
        "",
        f"Targets (issue 9), at N = {n}:",
        "",
        f"- >= 99% of ticks on time: {100 * biggest['on_time']:.2f}%, "
        f"{_met(biggest['on_time'] >= TARGETS['on_time'])}",
        f"- <= {TARGETS['queries']} queries per tick in total: at most "
        f"{biggest['queries_per_tick_max']}, {_met(biggest['queries_per_tick_max'] <= 3)}",
        f"- RSS <= 1 GB: {biggest['rss_mb']:.0f} MB peak after "
        f"{biggest['looks_per_rollout']:.0f} looks, "
        f"{_met(biggest['rss_mb'] <= TARGETS['rss_mb'])}; a look keeps "
        f"{biggest['kept_kb_per_look']:.2f} KB a rollout, so at 120 looks "
        f"~{_at_120_looks(biggest):.0f} MB, {_met(_at_120_looks(biggest) <= TARGETS['rss_mb'])}",
        f"- state <= 64 KB per rollout: {biggest['state_kb_max']:.1f} KB after "
        f"{biggest['looks_per_rollout']:.0f} looks, "
        f"{_met(biggest['state_kb_max'] <= TARGETS['state_kb'])} (at 120 looks: see "
        "tests/test_state.py, the bounded state)",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", default="100,300,1000")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child run: JSON out
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="controller-scale-") as workdir:
            print(json.dumps(run_one(args.one, args.minutes, Path(workdir))))
        return
    rows = []
    for n in (int(x) for x in args.rollouts.split(",")):
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--minutes", str(args.minutes)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = ".venv/bin/python benchmarks/controller_scale.py " + " ".join(sys.argv[1:])
    text = render(rows, command.strip(), args.minutes)
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
