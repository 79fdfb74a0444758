"""Every fault of issue 5 on the real local stack, several times: the faults table.

    .venv/bin/python benchmarks/faults.py [--runs 3] [--only NAME ...] [--write]

One healthy stack (v1, v2 model servers, HAProxy, Prometheus, load; rollout/demo) with
a fault proxy before Prometheus and a tap before HAProxy's runtime API
(tests/support/cli_faults.py). Each run is a real `rollout run` process with a short
policy (holds of 6 s, a look every 2 s), and one fault. Per fault: runs, outcomes as
expected, promotions on bad data (must be 0), state lost (must be 0), time to recover.
`--write` writes benchmarks/results/faults.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a fresh clone: `tests` importable
    sys.path.insert(0, str(ROOT))

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, Weights  # noqa: E402
from rollout.state import Phase  # noqa: E402
from tests.support import cli_faults as cf  # noqa: E402
from tests.support.bad_input import CASES, valid_files  # noqa: E402
from tests.support.fault_proxy import Fault  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "faults.md"
HALF = Weights.candidate_share(50)
RUN = (sys.executable, "-m", "rollout.cli", "run")


@dataclass(frozen=True)
class Expected:
    code: int
    weights: Weights
    promotion_is_wrong: bool  # the data was bad or missing: a promotion would be wrongful
    recovery: str  # what "time to recover" measures for this fault


@dataclass
class Tally:
    runs: int = 0
    as_expected: int = 0
    wrongful_promotions: int = 0
    state_lost: int = 0
    recoveries: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


Scenario = Callable[["cf.FaultStack", Path], "cf.Outcome"]
_PROMOTED = Expected(0, ALL_CANDIDATE, False, "")
_BACK = Expected(1, ALL_BASELINE, True, "fault start -> 100/0 confirmed")
_PAUSED = Expected(2, cf.W20, True, "fault start -> paused at step 1")
_RESUME = "restart -> weights confirmed again"


def _bad(fault: Fault) -> Scenario:
    return lambda stack, workdir: cf.bad_answers(stack, workdir, fault)


FAULTS: dict[str, tuple[Scenario, Expected]] = {
    "kill -9 during a hold": (cf.crash_during_hold, Expected(0, ALL_CANDIDATE, False, _RESUME)),
    "kill -9 during an analysis": (
        cf.crash_during_analysis,
        Expected(0, ALL_CANDIDATE, False, _RESUME),
    ),
    "kill -9 right after a weight change": (
        cf.crash_after_weight_change,
        Expected(0, ALL_CANDIDATE, False, _RESUME),
    ),
    "Prometheus down < limit": (
        cf.prometheus_short_outage,
        Expected(0, ALL_CANDIDATE, False, "Prometheus back -> next look"),
    ),
    "Prometheus down > limit": (cf.prometheus_long_outage, _BACK),
    "HAProxy killed, restarted at 100/0": (
        cf.haproxy_restart,
        Expected(0, ALL_CANDIDATE, False, "HAProxy back -> weights restored"),
    ),
    "rollback while HAProxy is down": (
        cf.rollback_while_router_down,
        Expected(1, ALL_BASELINE, True, "HAProxy back -> 100/0 confirmed"),
    ),
    "Prometheus slow (> timeout)": (_bad(Fault.SLOW), _BACK),
    "Prometheus HTTP 500": (_bad(Fault.HTTP_500), _BACK),
    "Prometheus invalid JSON": (_bad(Fault.INVALID_JSON), _BACK),
    "Prometheus NaN values": (_bad(Fault.NAN), _PAUSED),
    "Prometheus +Inf values": (_bad(Fault.INF), _PAUSED),
    "Prometheus empty vector": (_bad(Fault.EMPTY), _PAUSED),
    "Prometheus series of one version": (_bad(Fault.ONE_VERSION), _PAUSED),
}
BAD_INPUT = "invalid spec/policy files (14 kinds)"


def judge_outcome(outcome: cf.Outcome, expected: Expected) -> tuple[bool, bool, bool]:
    """(as expected, wrongful promotion, state lost)"""
    state = outcome.state
    saved = outcome.at_fault
    lost = saved is not None and (
        state.history[: len(saved.history)] != saved.history or state.step < saved.step
    )
    wrongful = expected.promotion_is_wrong and state.phase is Phase.PROMOTED
    promoted = [cf.W20, cf.W50, ALL_CANDIDATE]
    if outcome.fault.startswith("HAProxy"):  # step 1's restored weights are a second change
        promoted = [cf.W20, cf.W20, cf.W50, ALL_CANDIDATE]
    served = {ALL_CANDIDATE: {"v2": 40}, ALL_BASELINE: {"v1": 40}}.get(expected.weights)
    as_expected = (
        outcome.code == expected.code
        and outcome.weights == expected.weights
        and (served is None or dict(outcome.answered) == served)
        and (expected.code != 0 or outcome.changes == promoted)
    )
    return as_expected, wrongful, lost


def run_fault(name: str, stack: cf.FaultStack, workdir: Path, runs: int) -> Tally:
    scenario, expected = FAULTS[name]
    tally = Tally()
    for i in range(runs):
        stack.reset()
        tally.runs += 1
        try:
            outcome = scenario(stack, workdir / f"run{i}")
        except cf.TornStateError as exc:
            tally.state_lost += 1
            tally.failures.append(str(exc))
            continue
        except AssertionError as exc:
            tally.failures.append(str(exc)[-500:])
            continue
        ok, wrongful, lost = judge_outcome(outcome, expected)
        tally.as_expected += ok
        tally.wrongful_promotions += wrongful
        tally.state_lost += lost
        if not ok:
            tally.failures.append(f"exit {outcome.code}, weights {outcome.weights}")
        if outcome.recovery is not None:
            tally.recoveries.append(outcome.recovery)
        print(
            f"  {name} #{i + 1}: exit {outcome.code}, {outcome.state.phase.value}, "
            f"weights {outcome.weights}, recovery "
            f"{'-' if outcome.recovery is None else f'{outcome.recovery:.1f}s'}",
            flush=True,
        )
    return tally


def run_bad_input(stack: cf.FaultStack, workdir: Path, runs: int) -> Tally:
    """Each invalid file through `rollout run` while HAProxy serves 50/50 with live load."""
    assert stack.demo.haproxy is not None
    tally = Tally()
    for i in range(runs):
        stack.reset()
        stack.router.set_weights(HALF)
        for case, (_, field_path, mutate) in CASES.items():
            tally.runs += 1
            directory = workdir / f"run{i}" / case
            directory.mkdir(parents=True)
            spec, policy = valid_files(stack.demo.haproxy)
            mutate(spec, policy)
            (directory / "rollout.yaml").write_text(yaml.safe_dump(spec))
            (directory / "policy.yaml").write_text(yaml.safe_dump(copy.deepcopy(policy)))
            result = subprocess.run(
                [*RUN, str(directory / "rollout.yaml"), "--state-dir", str(directory / "state")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            unchanged = stack.router.verify(HALF) is True
            answered = stack.answered_by()
            ok = (
                result.returncode == 3
                and field_path in result.stderr
                and unchanged
                and answered["v1"] > 0
                and answered["v2"] > 0
                and not (directory / "state").exists()
            )
            tally.as_expected += ok
            tally.wrongful_promotions += not unchanged
            if not ok:
                tally.failures.append(
                    f"{case}: exit {result.returncode}, weights unchanged {unchanged}, "
                    f"answers {dict(answered)}, stderr {result.stderr[-300:]!r}"
                )
        print(f"  {BAD_INPUT} #{i + 1}: {tally.as_expected}/{tally.runs} refused", flush=True)
    return tally


def _seconds(values: list[float]) -> tuple[str, str]:
    if not values:
        return "-", "-"
    return f"{statistics.median(values):.1f}", f"{max(values):.1f}"


def table(results: dict[str, Tally]) -> str:
    lines = [
        "| fault | runs | as expected | promotions on bad data | state lost "
        "| recover median s | recover max s | time to recover measures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, tally in results.items():
        median, worst = _seconds(tally.recoveries)
        measures = FAULTS[name][1].recovery if name in FAULTS else "(nothing to recover)"
        lines.append(
            f"| {name} | {tally.runs} | {tally.as_expected} | {tally.wrongful_promotions} "
            f"| {tally.state_lost} | {median} | {worst} | {measures} |"
        )
    return "\n".join(lines)


def machine_note() -> str:
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.platform()}, Python {platform.python_version()}, {cpus} CPUs "
        f"(shared with other work; load average at the end {load})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="fault names (substrings) to run")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = parser.parse_args(argv)
    names = [n for n in [*FAULTS, BAD_INPUT] if not args.only or any(o in n for o in args.only)]
    began = time.monotonic()
    results: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="rollout-faults-") as tmp:
        workdir = Path(tmp)
        stack = cf.FaultStack(workdir / "stack").start()
        try:
            for index, name in enumerate(names):
                print(f"{name} ({args.runs} runs)", flush=True)
                where = workdir / f"fault{index}"
                if name == BAD_INPUT:
                    results[name] = run_bad_input(stack, where, args.runs)
                else:
                    results[name] = run_fault(name, stack, where, args.runs)
                for failure in results[name].failures:
                    print(f"    unexpected: {failure}", flush=True)
        finally:
            stack.stop()
    wall = time.monotonic() - began
    text = table(results)
    print(text)
    print(f"wall time {wall / 60:.1f} min")
    if args.write:
        write(text, args, wall)
    bad = sum(t.wrongful_promotions + t.state_lost for t in results.values())
    return 1 if bad else 0


def write(text: str, args: argparse.Namespace, wall: float) -> None:
    command = f".venv/bin/python benchmarks/faults.py --runs {args.runs} --write"
    if args.only:
        command += " --only " + " ".join(f"'{o}'" for o in args.only)
    RESULTS.write_text(
        "# Faults on the real local stack\n\n"
        f"Command: `{command}` (wall time {wall / 60:.1f} min).\n\n"
        f"Machine: {machine_note()}.\n\n"
        "Each run is a real `rollout run` process on a healthy stack (v1, v2 model servers, "
        "HAProxy, Prometheus, 40 requests/s of load) with a short policy: steps 20% and 50%, "
        f"holds of 6 s, a look every 2 s, outage limit {cf.OUTAGE_LIMIT:g} s, pause when "
        "inconclusive. Prometheus faults come from a proxy in front of the real Prometheus, "
        "switched on once step 1's weights are confirmed and left on. *As expected*: the exit "
        "code, HAProxy's read-back and 40 answers counted through HAProxy are what the fault "
        "calls for (promoted 0/100 when the data stays good, 100/0 on a rollback, 80/20 held "
        "on a pause); a resumed run's weight changes are exactly 80/20, 50/50, 0/100. "
        "*Promotions on bad data*: a promotion while Prometheus failed or answered unusable "
        "data (for bad input: any traffic change). *State lost*: a state file that did not "
        "parse at any of the reads made every 50-100 ms during the runs, or a resumed run "
        "whose history does not begin with the killed run's.\n\n"
        f"{text}\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
