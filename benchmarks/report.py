"""The benchmark's tables, the targets of issues 8 and 4 checked against them, the results file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks.rows import AA, ALLOWED, ERRORS_2, ERRORS_15, P95_30, P95_X2, Row, RowStats
from benchmarks.scenarios import SCENARIOS, TARGETED, by_name
from benchmarks.simulate import Schedule
from benchmarks.tuning import Outcome
from rollout.spec import Policy, format_duration

HELD = ", held within tolerance"  # suffix of the peers also tuned on candidates within +20%
DISCUSSION = "## Discussion"  # kept from the existing file when it is rewritten
FALSE_ROLLBACK_TARGET = 0.01
DETECTION_TARGET = 0.99
ORACLE_FACTOR = 2.0
SPEED_FACTOR = 1.5  # judge call p95 at look 120 within 1.5x of look 5
# errors 1% -> 2%: median minutes to rollback in the committed table of issue 4 (commit f3d4259)
ERRORS_2_BEFORE = 4.0


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


@dataclass(frozen=True)
class Acceptance:
    """The engine-driven rows of issue 8."""

    rows: tuple[Row, ...]
    stats: dict[str, RowStats]  # by row name
    oracle_p95_30: float  # the oracle's median minutes on P95 +30% (fixed schedule)


@dataclass(frozen=True)
class Speed:
    policy: Policy  # the long policy
    rollouts: int
    reached: int  # rollouts that reached look 120
    repeats: int
    look_5: float  # p95 seconds of advance(state, Looked(...), policy, now)
    look_120: float


@dataclass(frozen=True)
class Peers:
    """Issue 4's scenarios on the fixed schedule: ours and the peers."""

    outcomes: dict[str, list[Outcome]]
    passed: dict[str, float]
    kayenta_check: str
    rollouts: int
    layout: str
    judge_calls: int
    judge_seconds: float


def _minutes(value: float) -> str:
    return "not reached" if math.isinf(value) else f"{value:.3g}"


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
                note = f"no regression shown at the last look in {passed[name]:.1%}"
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


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**NOT MET**"


def _policy_line(policy: Policy, plan: Schedule) -> str:
    steps = ", ".join(f"{s.weight}% for {format_duration(s.hold)}" for s in policy.steps)
    return (
        f"Policy `{policy.name}`: {steps}, a look every {format_duration(plan.interval)} "
        f"({plan.intervals} looks when every step passes at its hold's end), "
        f"P{policy.latency.quantile * 100:g} may rise {policy.latency.max_regression:.0%}, "
        f"errors may rise {policy.errors.max_increase:.0%}, alpha {policy.alpha:g}, "
        f"minRequests {policy.min_requests}, inconclusiveGrace "
        f"{format_duration(policy.inconclusive_grace)} then {policy.on_inconclusive.value}."
    )


def acceptance_table(a: Acceptance) -> list[str]:
    lines = [
        "| candidate | buckets | counts | rollback | promote | pause | median min to decision | "
        "p95 min | median min to rollback | median min to promotion | median bad requests |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in a.rows:
        st = a.stats[row.name]
        healthy = row.kind in ("aa", "boundary")
        rollback = _pct(st.rollback) + (" (false)" if healthy else "")
        to_rollback = "-" if healthy else _minutes(st.rollback_median)
        promotion = _minutes(st.promotion_median) if healthy else "-"
        lines.append(
            f"| {row.scenario.name} | {row.layout} | {row.counting}{row.rule_note} | {rollback} | "
            f"{_pct(st.promote)} | {_pct(st.pause)} | {_minutes(st.decision_median)} | "
            f"{_minutes(st.decision_p95)} | {to_rollback} | {promotion} | {st.bad_median:,.0f} |"
        )
    return lines


def _find(a: Acceptance, scenario_name: str, layout: str, rule: str = "ready") -> list[Row]:
    return [
        r
        for r in a.rows
        if r.scenario.name == scenario_name and r.layout == layout and r.rule == rule
    ]


def acceptance_targets(a: Acceptance, speed: Speed | None) -> list[str]:
    """Issue 8's acceptance, each met or NOT MET with its numbers."""
    lines = []
    allowed = {s.name for s in ALLOWED}
    false_rows = [r for r in a.rows if r.scenario.name in allowed and r.rule == "ready"]
    worst = max(false_rows, key=lambda r: a.stats[r.name].rollback, default=None)
    if worst is not None:
        over = [r for r in false_rows if a.stats[r.name].rollback > FALSE_ROLLBACK_TARGET]
        layouts = sorted({r.layout for r in false_rows})
        scrapes = sorted({r.counting for r in false_rows})
        lines.append(
            f"- every allowed candidate rolled back in <= 1% ({len(false_rows)} rows: "
            f"{len(allowed)} shapes, buckets {', '.join(layouts)}, {', '.join(scrapes)}): worst "
            f"{_pct(a.stats[worst.name].rollback)} ({worst.name}); "
            f"{len(over)} rows above 1%: {_met(not over)}"
        )
        for r in over:
            lines.append(f"  - {r.name}: {_pct(a.stats[r.name].rollback)}")
    for scenario in AA:
        for r in _find(a, scenario.name, "kit"):
            rate = a.stats[r.name].rollback
            lines.append(
                f"- A/A false rollbacks <= 1%, {r.name}: {_pct(rate)}: "
                f"{_met(rate <= FALSE_ROLLBACK_TARGET)}"
            )
    for r in _find(a, P95_30.name, "kit"):
        st = a.stats[r.name]
        lines.append(
            f"- {r.name} detected in >= 99%: {_pct(st.rollback)}: "
            f"{_met(st.rollback >= DETECTION_TARGET)}"
        )
        within = st.rollback_median <= ORACLE_FACTOR * a.oracle_p95_30
        lines.append(
            f"- {r.name}: median {_minutes(st.rollback_median)} min to rollback vs the oracle's "
            f"{_minutes(a.oracle_p95_30)} min (peers.py's SPRT, fixed schedule), within 2x: "
            f"{_met(within)}"
        )
    for r in _find(a, P95_X2.name, "coarse"):
        rate = a.stats[r.name].rollback
        lines.append(
            f"- {r.name} detected in >= 99%: {_pct(rate)}: {_met(rate >= DETECTION_TARGET)}"
        )
    for r in _find(a, ERRORS_2.name, "kit"):
        st = a.stats[r.name]
        ok = st.rollback >= DETECTION_TARGET and st.rollback_median <= ERRORS_2_BEFORE
        lines.append(
            f"- {r.name} detected in >= 99% ({_pct(st.rollback)}) with a median time no worse "
            f"than issue 4's {ERRORS_2_BEFORE:g} min ({_minutes(st.rollback_median)} min): "
            f"{_met(ok)}"
        )
    if speed is not None:
        ok = speed.look_120 <= SPEED_FACTOR * speed.look_5
        lines.append(
            f"- judge call p95 at look 120 within 1.5x of look 5: "
            f"{1000 * speed.look_120:.2f} ms vs {1000 * speed.look_5:.2f} ms "
            f"({speed.look_120 / speed.look_5:.2f}x): {_met(ok)}"
        )
    return lines


def tradeoff(a: Acceptance) -> list[str]:
    """Waiting for a `ready` judgement before a step passes: what it costs, what it saves."""
    lines = []
    for scenario, what in (
        (AA[0], "median minutes to promotion"),
        (P95_30, "median bad requests served"),
        (ERRORS_15, "median bad requests served"),
    ):
        for old in _find(a, scenario.name, "kit", "old"):
            new = [r for r in _find(a, scenario.name, "kit") if r.scrape == old.scrape]
            if not new:
                continue
            n, o = a.stats[new[0].name], a.stats[old.name]
            if scenario.kind == "aa":
                values = (_minutes(n.promotion_median), _minutes(o.promotion_median))
                extra = f"; promoted {_pct(n.promote)} vs {_pct(o.promote)}"
            else:
                values = (f"{n.bad_median:,.0f}", f"{o.bad_median:,.0f}")
                extra = (
                    f"; median min to rollback {_minutes(n.rollback_median)} vs "
                    f"{_minutes(o.rollback_median)}"
                )
            lines.append(
                f"- {scenario.name} ({old.counting}): {what} {values[0]} with the ready rule vs "
                f"{values[1]} with the old rule{extra}"
            )
    return lines


def render_acceptance(run: Run, a: Acceptance, speed: Speed | None) -> list[str]:
    shapes = sorted({(r.scenario.name, r.scenario) for r in a.rows}, key=lambda x: x[0])
    calls = sum(st.judge_calls for st in a.stats.values())
    seconds = sum(st.judge_seconds for st in a.stats.values())
    lines = [
        "## Engine-driven rollouts (issue 8)",
        "",
        f"{run.rollouts} rollouts per row, seed {run.seed}, 200 req/s to the service (the "
        "candidate gets 200 x its weight). Each rollout runs through `rollout.engine.advance` "
        "(benchmarks/rollouts.py): the weights move only when the engine says so. Counts come "
        "from simulated Prometheus scrapes of cumulative counters (random phase per rollout, "
        "+-1% jitter) cut per look by `rollout.analysis.counters.exact_increase`, as "
        "`rollout/analysis/prometheus.py` does (benchmarks/scrape.py). Buckets: `kit` = "
        "`rollout.instrument.metrics.LATENCY_BUCKETS` + +Inf, `coarse` = issue 4's "
        "(10, 25, 50, 75, 100, 150, 200, 250, 500 ms, 1, 2, 5 s, +Inf).",
        "",
        f"The engine's per-look call (`advance` with `Looked`, which runs the judge): "
        f"{calls:,} calls, {1000 * seconds / max(calls, 1):.2f} ms each on average.",
        "",
        "Shapes (baseline -> candidate):",
        "",
    ]
    for name, s in shapes:
        lines.append(
            f"- {name}: {s.baseline.name}, errors {s.baseline_errors:.1%} -> {s.candidate.name}, "
            f"errors {s.candidate_errors:.1%}"
        )
    lines += [
        "",
        "How to read it: times are minutes from the start of the rollout (the first weights) to "
        "the decision (rollback, promotion or pause); 'not reached' when the quantile falls on "
        "rollouts without that outcome (e.g. fewer than half promoted). Median min to promotion "
        "counts the other outcomes as never promoted. Bad requests: the candidate's errors plus "
        "its other requests slower than the baseline's true P95, served until the decision. "
        "'old advance rule': the same engine where a step passes at its hold's end on any look "
        "whose verdict is 'no regression shown yet' (issue 4), not only on a `ready` judgement.",
        "",
        *acceptance_table(a),
        "",
        "### Targets (issue 8)",
        "",
        *acceptance_targets(a, speed),
        "",
        "### The trade-off of the ready rule",
        "",
        *(tradeoff(a) or ["- (no old-rule rows in this run)"]),
        "",
    ]
    return lines


def render_speed(speed: Speed) -> list[str]:
    steps = ", ".join(f"{s.weight}% for {format_duration(s.hold)}" for s in speed.policy.steps)
    return [
        "## Speed of a look (issue 8)",
        "",
        f"`advance(state, Looked(observation), policy, now)` (the engine's per-look call, which "
        f"runs the judge) at look 5 and look 120 of {speed.rollouts} A/A rollouts (lognormal, kit "
        f"buckets, 30 s scrapes) under `{speed.policy.name}` ({steps}); {speed.reached} reached "
        f"look 120. Each timed call repeated {speed.repeats} times (advance is pure), timed in "
        "the main process after the workers finished.",
        "",
        f"- p95 at look 5: {1000 * speed.look_5:.2f} ms",
        f"- p95 at look 120: {1000 * speed.look_120:.2f} ms "
        f"({speed.look_120 / speed.look_5:.2f}x of look 5; target within "
        f"{SPEED_FACTOR:g}x: {_met(speed.look_120 <= SPEED_FACTOR * speed.look_5)})",
        "",
    ]


def render_peers(run: Run, p: Peers) -> list[str]:
    per_call = 1000 * p.judge_seconds / max(p.judge_calls, 1)
    lines = [
        "## Against the peers, fixed schedule (issue 4)",
        "",
        f"{p.rollouts} rollouts per scenario, seed {run.seed}, {p.layout} buckets, counts drawn "
        "directly per look (no scrapes) on the policy's fixed schedule: every rule sees the same "
        "draws. 'ours' here is the judge on every look (a FAIL verdict is a rollback), "
        f"not the engine ({p.judge_calls:,} judge calls, {per_call:.2f} ms each on average).",
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
        "How to read it: times are minutes from the",
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
        f" {p.kayenta_check}.",
        "",
        *_table(p.outcomes, p.passed),
        "",
        "### Targets (issue 4)",
        "",
        *targets(p.outcomes, run.plan.interval / 60.0),
        "",
    ]
    return lines


def render(
    run: Run, acceptance: Acceptance | None, speed: Speed | None, peers: Peers | None
) -> str:
    lines = [
        "# Judge decision quality",
        "",
        f"Command: `{run.command}`",
        "",
        f"Judge: `{run.judge}`.",
        "",
        f"Machine: {run.machine}. Wall time: {run.wall_seconds:.0f} s.",
        "",
        _policy_line(run.policy, run.plan),
        "",
    ]
    if acceptance is not None:
        lines += render_acceptance(run, acceptance, speed)
    if speed is not None:
        lines += render_speed(speed)
    if peers is not None:
        lines += render_peers(run, peers)
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
