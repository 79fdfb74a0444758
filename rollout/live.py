"""The live panel of a rollout on a terminal: `rollout run`, `demo` and `status --watch`.

`rollout_panel` is pure (a state, the clock's `now`, the next wake-up) -> a rich renderable:
step and weights, both versions' P95 and error rate (this look, and over every look with the
judge's interval of the change), each test's e-value against the threshold that would roll
back, the time to the next look and to the end of the step's hold, and the last looks.
`LivePanel` keeps it on screen (rich `Live`) and is used only when stdout is a terminal:
in CI and pipes the driver prints its plain lines as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollout.analysis.stats import version_error_rate, version_p95
from rollout.analysis.verdict import Comparison, Verdict
from rollout.spec import Policy
from rollout.state import Phase, RolloutState

HISTORY = 5  # looks shown under the tests
_COLOURS = {Verdict.FAIL: "red", Verdict.NO_REGRESSION: "green"}
_PHASE_COLOURS = {Phase.PROMOTED: "green", Phase.ROLLED_BACK: "red", Phase.ABORTED: "red"}


def _ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * 1000:.1f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * 100:.2f}%"


def _in(seconds: float) -> str:
    return f"in {max(0.0, seconds):.0f}s"


def _interval(c: Comparison) -> str:
    if c.interval is None:
        return "-"
    low, high = c.interval
    level = f" ({c.confidence * 100:.4g}%)" if c.confidence is not None else ""
    return f"[{low:.3g}, {high:.3g}]{level}"


def _evidence(c: Comparison) -> Text:
    """The e-value against its threshold, with a bar of how far (on a log scale) it is."""
    if c.e_value is None or c.threshold is None or not math.isfinite(c.e_value):
        return Text("-")
    share = 0.0
    if c.e_value > 1 and c.threshold > 1:
        share = min(1.0, math.log(c.e_value) / math.log(c.threshold))
    filled = round(share * 10)
    colour = "red" if c.e_value >= c.threshold else ("yellow" if share >= 0.5 else "green")
    text = Text(f"{c.e_value:.3g} / {c.threshold:.3g} ")
    text.append("#" * filled, style=colour)
    text.append("." * (10 - filled), style="dim")
    return text


def _versions(state: RolloutState, comparisons: dict[str, Comparison]) -> Table:
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("version", "weight", "P95 this look", "P95 all looks", "errors this look",
                   "errors all looks"):  # fmt: skip
        table.add_column(column, justify="left" if column == "version" else "right")
    last = state.history[-1] if state.history else None
    latency, errors = comparisons.get("latency_p95"), comparisons.get("error_rate")
    target = state.target
    for name, weight, side in (
        (target.baseline, state.desired.baseline, "baseline"),
        (target.candidate, state.desired.candidate, "candidate"),
    ):
        counts = getattr(last, side) if last is not None else None
        table.add_row(
            name,
            f"{weight}%",
            _ms(version_p95(counts)) if counts is not None else "-",
            _ms(getattr(latency, side)) if latency is not None else "-",
            _pct(version_error_rate(counts)) if counts is not None else "-",
            _pct(getattr(errors, side)) if errors is not None else "-",
        )
    return table


def _tests(comparisons: tuple[Comparison, ...]) -> Table:
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("test", "change", "interval", "e-value / rollback at", "verdict"):
        table.add_column(column)
    for c in comparisons:
        change = "-" if c.effect is None else f"{c.effect_name} {c.effect:.3g}"
        verdict = Text(c.verdict.value, style=_COLOURS.get(c.verdict, "yellow"))
        table.add_row(c.metric, change, _interval(c), _evidence(c), verdict)
    return table


def _history(state: RolloutState) -> Table:
    table = Table(box=None, pad_edge=False, expand=False, show_header=True)
    for column in ("look", "P95", "errors"):
        table.add_column(column, justify="right" if column == "look" else "left")
    first = len(state.history) - min(HISTORY, len(state.history))
    for index, look in enumerate(state.history[first:], start=first + 1):
        p95 = f"{_ms(version_p95(look.baseline))} -> {_ms(version_p95(look.candidate))}"
        errors = (
            f"{_pct(version_error_rate(look.baseline))} -> "
            f"{_pct(version_error_rate(look.candidate))}"
        )
        table.add_row(str(index), p95, errors)
    return table


def _next(state: RolloutState, policy: Policy | None, now: float, next_at: float | None) -> str:
    if state.phase.decided:
        return f"decided: {state.reason}" if state.reason else "decided"
    parts = []
    if next_at is not None and math.isfinite(next_at):
        parts.append(f"next look {_in(next_at - now)}")
    if policy is not None and state.step_started_at is not None and state.step < len(policy.steps):
        hold_end = state.step_started_at + policy.steps[state.step].hold + state.step_outage_seconds
        if hold_end > now:
            parts.append(f"step {state.step + 1} may pass {_in(hold_end - now)} (its hold)")
        else:
            parts.append(f"step {state.step + 1} passes at a look with enough data")
    elif not state.confirmed:
        parts.append(f"waiting for the router to confirm {state.desired}")
    return "; ".join(parts) or "-"


def rollout_panel(
    state: RolloutState,
    *,
    now: float,
    next_at: float | None = None,
    policy: Policy | None = None,
) -> Panel:
    """The whole panel, from plain values."""
    target = state.target
    steps = f"/{len(policy.steps)}" if policy is not None else ""
    step = min(state.step + 1, len(policy.steps)) if policy is not None else state.step + 1
    confirmed = "confirmed" if state.confirmed else "not confirmed yet"
    phase = Text(state.phase.value, style=_PHASE_COLOURS.get(state.phase, "yellow"))
    head = Text.assemble(
        "phase ", phase, f"   step {step}{steps}   weights {state.desired} ({confirmed})"
    )
    parts: list[RenderableType] = [head, Text(_next(state, policy, now, next_at), style="cyan")]
    if state.message:
        parts.append(Text(state.message, style="dim"))
    comparisons = state.judgement.comparisons if state.judgement is not None else ()
    parts += [Text(""), _versions(state, {c.metric: c for c in comparisons})]
    if comparisons:
        parts += [Text(""), _tests(comparisons)]
    if state.history:
        parts += [Text(""), _history(state)]
    title = f"rollout {state.name}: {target.model} {target.baseline} -> {target.candidate}"
    return Panel(Group(*parts), title=title, title_align="left")


class LivePanel:
    """The panel kept up to date on a terminal; its countdowns follow `now()`."""

    def __init__(self, live: Live, now: Callable[[], float], policy: Policy | None) -> None:
        self.live = live
        self.now = now
        self.policy = policy
        self.state: RolloutState | None = None
        self.next_at: float | None = None

    def show(self, state: RolloutState, next_at: float | None) -> None:
        self.state, self.next_at = state, next_at
        self.live.refresh()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.state is None:
            yield Text("starting...")
            return
        panel = rollout_panel(self.state, now=self.now(), next_at=self.next_at, policy=self.policy)
        # The CLI's console soft-wraps (never wraps) its lines; the panel's must wrap.
        yield from console.render(panel, options.update(no_wrap=False, overflow="fold"))


@contextmanager
def live_panel(
    console: Console,
    now: Callable[[], float],
    policy: Policy | None = None,
    *,
    enabled: bool = True,
) -> Iterator[LivePanel | None]:
    """A live panel while the block runs when `enabled` and `console` is a terminal; else
    None (the caller prints plain lines). Lines printed meanwhile scroll above the panel."""
    if not enabled or not console.is_terminal:
        yield None
        return
    live = Live(console=console, refresh_per_second=2, transient=False)
    panel = LivePanel(live, now, policy)
    live.update(panel)
    with live:
        yield panel
