"""Decision quality of the judge: engine-driven rollouts (issue 8) and the peers (issue 4).

    .venv/bin/python benchmarks/judge_quality.py [--rollouts N] [--seed S] [--workers W] [--write]

Three parts (`--parts`, all by default):

- acceptance: the rows of issue 8 (benchmarks/rows.py), each `--rollouts` rollouts driven by
  `rollout.engine.advance` (benchmarks/rollouts.py) with counts cut from simulated Prometheus
  scrapes (benchmarks/scrape.py), on the kit's and the coarse bucket layouts;
- speed: the engine's per-look call at look 5 and look 120 of long A/A rollouts;
- peers: issue 4's scenarios on the policy's fixed schedule (benchmarks/simulate.py), our judge on
  every look against the peers' rules tuned to our A/A false-rollback rate (benchmarks/tuning.py).

Prints the tables and the targets; `--write` also writes benchmarks/results/judge_quality.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a fresh clone: `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.fixed_schedule import (  # noqa: E402
    ORACLE_BETA,
    ChunkResult,
    JudgeFn,
    Task,
    evaluate,
    kayenta_agreement,
    merge,
    run_chunk,
)
from benchmarks.peers import oracle  # noqa: E402
from benchmarks.rollouts import (  # noqa: E402
    CallTimer,
    Record,
    drive,
    long_policy,
    old_advance_rule,
    set_engine_judge,
)
from benchmarks.rows import AA, P95_30, Row, RowStats, rows  # noqa: E402
from benchmarks.scenarios import SCENARIOS, schedule  # noqa: E402
from benchmarks.scrape import Cells, DirectTraffic, ScrapedTraffic  # noqa: E402
from benchmarks.simulate import LAYOUTS, Scenario, Schedule, simulate  # noqa: E402
from benchmarks.tuning import minutes  # noqa: E402
from rollout.spec import Policy, load_policy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "judge_quality.md"
PARTS = ("acceptance", "speed", "peers")


@dataclass(frozen=True)
class RowTask:
    """Acceptance part: `rollouts` engine-driven rollouts of one row."""

    row: int
    chunk: int
    rollouts: int


_WORKER: dict[str, Any] = {}


def load_judge(spec: str) -> JudgeFn:
    module, _, name = spec.partition(":")
    function: JudgeFn = getattr(importlib.import_module(module), name)
    return function


def use_judge(spec: str) -> JudgeFn:
    """Load the judge and make the engine call it (the default is the engine's own)."""
    function = load_judge(spec)
    set_engine_judge(function)
    return function


def _init_worker(
    policy: Policy,
    plan: Schedule,
    judge_spec: str,
    seed: int,
    peer_layout: str,
    table: tuple[Row, ...],
) -> None:
    _WORKER.update(
        policy=policy,
        plan=plan,
        judge=use_judge(judge_spec),
        seed=seed,
        peer_layout=peer_layout,
        rows=table,
        cells={},
    )


def traffic_for(row: Row, rng: np.random.Generator) -> DirectTraffic:
    cache: dict[str, Cells] = _WORKER.setdefault("cells", {})
    if row.name not in cache:
        policy: Policy = _WORKER["policy"]
        cache[row.name] = Cells.of(
            row.scenario,
            LAYOUTS[row.layout],
            policy.latency.quantile,
            policy.latency.max_regression,
        )
    if row.scrape:
        return ScrapedTraffic(row.scenario, cache[row.name], rng, row.scrape)
    return DirectTraffic(row.scenario, cache[row.name], rng)


def run_rows(task: RowTask) -> tuple[RowTask, list[Record]]:
    row: Row = _WORKER["rows"][task.row]
    policy: Policy = _WORKER["policy"]
    seed = np.random.SeedSequence(_WORKER["seed"], spawn_key=(8, 8, row.key, task.chunk))
    rng = np.random.default_rng(seed)
    if row.rule == "old":
        with old_advance_rule():
            return task, [drive(traffic_for(row, rng), policy) for _ in range(task.rollouts)]
    return task, [drive(traffic_for(row, rng), policy) for _ in range(task.rollouts)]


def run_task(task: Task | RowTask) -> ChunkResult | tuple[RowTask, list[Record]]:
    return run_rows(task) if isinstance(task, RowTask) else run_chunk(task, _WORKER)


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    result, left, chunk = [], total, 0
    while left > 0:
        result.append((chunk, min(size, left)))
        left, chunk = left - size, chunk + 1
    return result


@dataclass(frozen=True)
class Simulated:
    evaluation: dict[str, ChunkResult]
    calibration: dict[str, ChunkResult]
    rows: dict[str, list[Record]]


def simulate_all(
    args: argparse.Namespace, policy: Policy, plan: Schedule, table: tuple[Row, ...]
) -> Simulated:
    """Every task of the acceptance and peers parts on one pool of worker processes."""
    tasks: list[Task | RowTask] = []
    if "acceptance" in args.parts:
        for i in range(len(table)):
            tasks += [RowTask(i, c, n) for c, n in _chunks(args.rollouts, args.chunk)]
    if "peers" in args.parts:
        regressions = [s for s in SCENARIOS if s.regression]
        calibrated = {s.twin for s in regressions} | {w for s in regressions for w in s.within}
        for i, scenario in enumerate(SCENARIOS):
            for calibration in (False, True) if scenario.name in calibrated else (False,):
                chunks = _chunks(args.peer_rollouts, args.chunk)
                tasks += [Task(i, c, n, calibration) for c, n in chunks]
    parts: dict[tuple[int, bool], list[ChunkResult]] = {}
    records: dict[int, list[tuple[int, list[Record]]]] = {}
    context = multiprocessing.get_context("fork")
    init = (policy, plan, args.judge, args.seed, args.peer_buckets, table)
    with context.Pool(args.workers, initializer=_init_worker, initargs=init) as pool:
        for done, part in enumerate(pool.imap_unordered(run_task, tasks), start=1):
            if isinstance(part, ChunkResult):
                parts.setdefault((part.task.scenario, part.task.calibration), []).append(part)
            else:
                records.setdefault(part[0].row, []).append((part[0].chunk, part[1]))
            if done % 20 == 0 or done == len(tasks):
                print(f"  {done}/{len(tasks)} chunks", file=sys.stderr, flush=True)
    evaluation = {SCENARIOS[i].name: merge(p) for (i, cal), p in parts.items() if not cal}
    calibrations = {SCENARIOS[i].name: merge(p) for (i, cal), p in parts.items() if cal}
    by_row = {
        table[i].name: [r for _, chunk in sorted(done, key=lambda d: d[0]) for r in chunk]
        for i, done in records.items()
    }
    return Simulated(evaluation, calibrations, by_row)


def oracle_minutes(
    scenario: Scenario, policy: Policy, plan: Schedule, rollouts: int, seed: int
) -> float:
    """Median minutes to detection of peers.py's oracle SPRT on the policy's fixed schedule."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8, 30)))
    tolerance = policy.latency.max_regression
    draws = simulate(
        scenario, plan, rollouts, rng, quantile=policy.latency.quantile, tolerance=tolerance
    )
    decided = oracle(scenario, draws, policy.alpha, ORACLE_BETA, tolerance)
    assert decided is not None
    return float(np.quantile(minutes(decided, plan.interval), 0.5, method="inverted_cdf"))


def measure_speed(policy: Policy, rollouts: int, repeats: int, seed: int) -> report.Speed:
    """p95 seconds of `advance(state, Looked(observation), policy, now)` at look 5 and look 120
    of long A/A rollouts (kit buckets, 30 s scrapes), each call repeated `repeats` times."""
    long = long_policy(policy)
    scenario = AA[0]
    cells = Cells.of(
        scenario, LAYOUTS["kit"], policy.latency.quantile, policy.latency.max_regression
    )
    timer = CallTimer(long, (5, 120), repeats)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8, 120)))
    reached = 0
    for _ in range(rollouts):
        record = drive(ScrapedTraffic(scenario, cells, rng, 30.0), long, probe=timer)
        reached += record.looks >= 120
    p95 = {
        look: float(np.quantile(s, 0.95)) if s else float("nan")
        for look, s in timer.seconds.items()
    }
    return report.Speed(long, rollouts, reached, repeats, p95[5], p95[120])


def machine_note(workers: int) -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), {workers} worker processes, "
        f"Python {platform.python_version()}, numpy {np.__version__}, {platform.system()}"
    )


def judge_sources(spec: str) -> list[Path]:
    """The source files of every `rollout` module the judge loads."""
    load_judge(spec)
    names = sorted(n for n in sys.modules if n == "rollout" or n.startswith("rollout."))
    files = (getattr(sys.modules[n], "__file__", None) for n in names)
    return [Path(f) for f in files if f]


def fingerprint(sources: list[Path]) -> str:
    """sha256 (12 hex) of the judge's sources: which judge made the table."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return f"sha256 {digest.hexdigest()[:12]} of the {len(sources)} rollout modules it loads"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part {unknown[0]!r}: choose from {PARTS}")
    return parts


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollouts", type=int, default=1000, help="rollouts per acceptance row")
    parser.add_argument("--seed", type=int, default=4, help="seed of every draw")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=50, help="rollouts per worker task")
    parser.add_argument("--policy", default="default", help="policy name or file")
    parser.add_argument(
        "--judge",
        default="rollout.analysis.judge:judge_next",
        help="module:function with judge_next's signature; the engine calls it",
    )
    parser.add_argument(
        "--parts", type=_parts, default=PARTS, help="comma-separated: " + ",".join(PARTS)
    )
    parser.add_argument(
        "--scrapes", type=_floats, default=(15.0, 30.0, 60.0), help="scrape intervals (s), kit rows"
    )
    parser.add_argument(
        "--coarse-scrapes",
        type=_floats,
        default=(30.0,),
        help="scrape intervals (s) of the coarse-bucket rows of allowed candidates",
    )
    parser.add_argument(
        "--regression-scrapes",
        type=_floats,
        default=(30.0,),
        help="scrape intervals (s) of the regression and trade-off rows",
    )
    parser.add_argument(
        "--peer-rollouts",
        type=int,
        default=500,
        help="rollouts per scenario of the peers' part (issue 4)",
    )
    parser.add_argument(
        "--peer-buckets",
        choices=("kit", "coarse"),
        default="kit",
        help="bucket layout of the peers' part",
    )
    parser.add_argument("--speed-rollouts", type=int, default=20, help="long A/A rollouts timed")
    parser.add_argument("--speed-repeats", type=int, default=20, help="timed calls per look timed")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        use_judge(args.judge)
    except (ImportError, AttributeError) as exc:
        print(f"cannot load the judge {args.judge!r}: {exc}", file=sys.stderr)
        return 3
    policy = load_policy(args.policy)
    plan = schedule(policy)
    table = rows(args.scrapes, args.coarse_scrapes, args.regression_scrapes)
    sources = judge_sources(args.judge)
    judge_print = fingerprint(sources)  # before the workers import it
    started = time.perf_counter()
    simulated = simulate_all(args, policy, plan, table)
    acceptance = None
    if "acceptance" in args.parts:
        stats = {row.name: RowStats.of(simulated.rows[row.name]) for row in table}
        oracle_30 = oracle_minutes(P95_30, policy, plan, args.rollouts, args.seed)
        acceptance = report.Acceptance(table, stats, oracle_30)
    speed = None
    if "speed" in args.parts:
        speed = measure_speed(policy, args.speed_rollouts, args.speed_repeats, args.seed)
    peers = None
    if "peers" in args.parts:
        outcomes, passed = evaluate(simulated.evaluation, simulated.calibration, plan)
        agreement = kayenta_agreement(
            simulated.evaluation, plan, rollouts=min(args.peer_rollouts, 40)
        )
        calls = sum(r.judge_calls for r in simulated.evaluation.values())
        seconds = sum(r.judge_seconds for r in simulated.evaluation.values())
        peers = report.Peers(
            outcomes, passed, agreement, args.peer_rollouts, args.peer_buckets, calls, seconds
        )
    wall = time.perf_counter() - started
    command = " ".join(
        ["benchmarks/judge_quality.py", *(argv if argv is not None else sys.argv[1:])]
    )
    run = report.Run(
        command=f".venv/bin/python {command}",
        machine=machine_note(args.workers),
        judge=f"{args.judge} ({judge_print})"
        if fingerprint(sources) == judge_print
        else f"{args.judge} ({judge_print}), CHANGED during the run: rerun",
        wall_seconds=wall,
        rollouts=args.rollouts,
        seed=args.seed,
        policy=policy,
        plan=plan,
    )
    text = report.render(run, acceptance, speed, peers)
    print(text)
    print(f"wall time: {wall:.0f} s", file=sys.stderr)
    if args.write:
        report.write(RESULTS, text)
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
