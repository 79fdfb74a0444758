"""The benchmark's table, the targets of issue 4 checked against it, and the results file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks.scenarios import SCENARIOS, TARGETED, by_name
from benchmarks.simulate import Schedule
from benchmarks.tuning import Outcome
from rollout.spec import Policy, format_duration

HELD = ", held within tolerance"  # suffix of the peers also tuned on candidates within +20%
DISCUSSION = "## Discussion"  # kept from the existing file when it is rewritten
FALSE_ROLLBACK_TARGET = 0.01
DETECTION_TARGET = 0.99
ORACLE_FACTOR = 2.0


@dataclass(frozen=True)
class Run:
    command: str
    machine: str
    judge: str
    wall_seconds: float
    rollouts: int
    seed: int
    policy: Policy
    plan: Schedule
    judge_calls: int
    judge_seconds: float
    kayenta_check: str


def _minutes(value: float) -> str:
    return "not reached" if math.isinf(value) else f"{value:g}"


def _table(outcomes: dict[str, list[Outcome]], passed: dict[str, float]) -> list[str]:
    lines = [
        "| scenario | rule | rollback rate | median min to rollback | p95 min | "
        "median bad requests served | setting / note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, rows in outcomes.items():
        scenario = by_name(name)
        for row in rows:
            regression = scenario.kind in ("latency", "errors")
            rate = f"{row.rollback_rate:.1%}" + ("" if regression else " (false)")
            if scenario.kind == "boundary":
                rate = f"{row.rollback_rate:.1%}"
            times = (_minutes(row.median_minutes), _minutes(row.p95_minutes))
            if not regression:
                times = ("-", "-")
            note = row.setting
            if row.rule == "ours" and not regression:
                note = f"PASS at the end in {passed[name]:.1%}"
            lines.append(
                f"| {name} | {row.rule} | {rate} | {times[0]} | {times[1]} | "
                f"{row.median_bad:,.0f} | {note} |"
            )
    return lines


def targets(outcomes: dict[str, list[Outcome]], first_look: float) -> list[str]:
    """Each target of issue 4: met or NOT MET, with the numbers (`first_look` in minutes)."""
    lines = []
    for name, rows in outcomes.items():
        if by_name(name).kind != "aa":
            continue
        rate = rows[0].rollback_rate
        verdict = "met" if rate <= FALSE_ROLLBACK_TARGET else "NOT MET"
        lines.append(f"- A/A false rollbacks <= 1%, {name}: {rate:.1%}: **{verdict}**")
    for name in TARGETED:
        rate = outcomes[name][0].rollback_rate
        verdict = "met" if rate >= DETECTION_TARGET else "NOT MET"
        lines.append(f"- {name} detected in >= 99%: {rate:.1%}: **{verdict}**")
    for name, rows in outcomes.items():
        if by_name(name).kind not in ("latency", "errors"):
            continue
        ours = rows[0].median_minutes
        by_rule = {row.rule: row.median_minutes for row in rows}
        oracle = by_rule["oracle SPRT"]
        within = ours <= ORACLE_FACTOR * oracle
        lines.append(
            f"- {name}: median {_minutes(ours)} min vs oracle {_minutes(oracle)} min, "
            f"within 2x: **{'met' if within else 'NOT MET'}**"
        )
        for held in (False, True):
            peers = {
                rule: t
                for rule, t in by_rule.items()
                if rule not in ("ours", "oracle SPRT") and (HELD in rule) == held
            }
            if not peers:
                continue
            slower = [f"{rule} {_minutes(t)}" for rule, t in peers.items() if not ours < t]
            text = "shorter than every peer"
            text += " held within tolerance" if held else " at equal A/A false-rollback rate"
            if slower:
                text = "NOT " + text + ": " + ", ".join(slower)
            if slower and ours <= first_look:
                text += " (a tie at the first look: no rule can decide earlier)"
            lines.append(f"  - {text}: **{'met' if not slower else 'NOT MET'}**")
    return lines


def render(run: Run, outcomes: dict[str, list[Outcome]], passed: dict[str, float]) -> str:
    policy, plan = run.policy, run.plan
    steps = ", ".join(f"{s.weight}% for {format_duration(s.hold)}" for s in policy.steps)
    per_call = 1000 * run.judge_seconds / max(run.judge_calls, 1)
    lines = [
        "# Judge decision quality",
        "",
        f"Command: `{run.command}`",
        "",
        f"Judge: `{run.judge}`.",
        "",
        f"Machine: {run.machine}. Wall time: {run.wall_seconds:.0f} s "
        f"({run.judge_calls:,} judge calls, {per_call:.2f} ms each on average).",
        "",
        f"Policy `{policy.name}`: {steps}, a look every {format_duration(plan.interval)} "
        f"({plan.intervals} looks), P{policy.latency.quantile * 100:g} may rise "
        f"{policy.latency.max_regression:.0%}, errors may rise {policy.errors.max_increase:.0%}, "
        f"alpha {policy.alpha:g}, minRequests {policy.min_requests}. "
        f"{run.rollouts} rollouts per scenario, seed {run.seed}.",
        "",
        "Scenarios (rate = total requests/s; the candidate gets rate x its step weight):",
        "",
    ]
    for s in SCENARIOS:
        lines.append(
            f"- {s.name}: {s.rate:g} req/s, baseline {s.baseline.name}, errors "
            f"{s.baseline_errors:.1%}; candidate {s.candidate.name}, "
            f"errors {s.candidate_errors:.1%}"
        )
    lines += [
        "",
        "How to read it: a FAIL verdict at any look is a rollback. Times are minutes from the",
        "start of the rollout to the look that rolled back; 'not reached' when fewer than half",
        "(or 95%) of the rollouts rolled back. Bad requests: the candidate's errors plus its",
        "requests slower than the baseline's true P95, served until the rollback (or over the",
        "whole rollout when none). A/A rows: the rollback rate is the false-rollback rate.",
        "",
        "Peers' tuning: each peer's settings come from a grid (see the setting column);",
        "a setting is allowed when its false-rollback rate on separate A/A calibration draws of",
        "the scenario's A/A twin (same rate and baseline, other seed) is at most ours on that",
        "twin (at least 1 rollout in the calibration set); among the allowed settings the one",
        "with the shortest median time to rollback on the scenario itself is kept (hindsight,",
        "which favours the peers). The setting column gives the chosen thresholds and their",
        "rollback rates on each calibration set. A/A and within-tolerance rows run the peers",
        "with the setting tuned for P95 +30% (heavy tail: for the tail-only regression), as",
        "deployed. Rows 'held within tolerance' (latency only): the peer is also held to our",
        "rollback rates on calibration draws of candidates within the policy's +20% (P95 +10%",
        "and +20%), where a rollback is a false rollback too by the policy's own rule; on",
        "A/A draws alone a threshold can sit anywhere between +0% and +30% and look fast.",
        "",
        f"Kayenta-style rule: scipy's mannwhitneyu (asymptotic, continuity correction), vectorised;"
        f" {run.kayenta_check}.",
        "",
        *_table(outcomes, passed),
        "",
        "## Targets (issue 4)",
        "",
        *targets(outcomes, plan.interval / 60.0),
        "",
    ]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Write the generated part; a hand-written discussion already in the file is kept."""
    kept = ""
    if path.is_file():
        old = path.read_text(encoding="utf-8")
        if DISCUSSION in old:
            kept = old[old.index(DISCUSSION) :]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ("\n" + kept if kept else ""), encoding="utf-8")
