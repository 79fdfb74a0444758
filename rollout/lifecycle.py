"""`rollout status` and `rollout list`: read the state files, never the lock, never a router.

Status exit codes follow `kubectl argo rollouts status`: it waits while the rollout is
progressing (a `rollout run` drives it), then 0 promoted, 1 rolled back or aborted,
2 paused; 2 too for a progressing rollout that no `rollout run` drives (it will not move
until one resumes it); 3 no such rollout; 4 still progressing when `--timeout` ran out.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from rollout.analysis.stats import version_error_rate, version_p95
from rollout.exit_codes import ExitCode
from rollout.live import LivePanel, live_panel
from rollout.state import LocalFileStore, LocalStateStore, Phase, RolloutState, StateError

STATUS_EXIT_CODES = {
    Phase.PROMOTED: ExitCode.PROMOTED,
    Phase.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Phase.ABORTED: ExitCode.ROLLED_BACK,
    Phase.PAUSED: ExitCode.PAUSED,
}
TIMED_OUT = ExitCode.INFRASTRUCTURE  # 4: still progressing when --timeout ran out


def stamp(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _current_files(store: LocalStateStore) -> dict[str, Path]:
    """Current rollouts (not archived) by key: `<key>.json` without a stamp."""
    found: dict[str, Path] = {}
    for path, state, _ in store.entries():
        if state is not None and not _archived(path):
            found[path.name[: -len(".json")]] = path
    return found


ARCHIVED = re.compile(r"\.\d{8}T\d{6}Z(-\d+)?\.json$")


def _archived(path: Path) -> bool:
    """`<key>.<stamp>.json` (LocalStateStore.archive), not a current `<key>.json`."""
    return ARCHIVED.search(path.name) is not None


def find(store: LocalStateStore, name: str | None) -> tuple[str, Path] | str:
    """The current rollout's key and file for `name` (its name or key); else why not."""
    current = _current_files(store)
    if name is None:
        if len(current) == 1:
            return next(iter(current.items()))
        if not current:
            return f"no rollouts in {store.directory}"
        return f"{len(current)} rollouts in {store.directory}: name one of {', '.join(current)}"
    for key, path in current.items():
        if key in (name, f"default-{name}"):
            return key, path
    names = ", ".join(current) or "none"
    return f"no rollout {name!r} in {store.directory} (there: {names})"


def driven(path: Path) -> bool:
    """A `rollout run` (or promote, abort, retry) holds the rollout's lock now."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _fmt(value: float | None, scale: float, unit: str) -> str:
    return "n/a" if value is None else f"{value * scale:.1f}{unit}"


def describe(state: RolloutState, path: Path, live: bool, now: float) -> list[str]:
    """What `rollout status` prints: phase, step, weights, the latest numbers, what's next."""
    t = state.target
    lines = [
        f"rollout {state.name}: {t.model} {t.baseline} -> {t.candidate} ({path})",
        f"  phase: {state.phase.value}" + (f" ({state.reason})" if state.reason else ""),
    ]
    confirmed = "confirmed by read-back" if state.confirmed else "not confirmed yet"
    lines.append(f"  step: {state.step + 1}, weights {state.desired} ({confirmed})")
    if state.history:
        last = state.history[-1]
        b, c = last.baseline, last.candidate
        lines.append(
            f"  latest look ({stamp(last.start)} .. {stamp(last.end)}): "
            f"P95 {t.baseline} {_fmt(version_p95(b), 1000.0, ' ms')}, "
            f"{t.candidate} {_fmt(version_p95(c), 1000.0, ' ms')}; "
            f"errors {t.baseline} {_fmt(version_error_rate(b), 100.0, '%')}, "
            f"{t.candidate} {_fmt(version_error_rate(c), 100.0, '%')}"
        )
    if state.judgement is not None:
        j = state.judgement
        lines.append(f"  judgement: {j.verdict.value}: {j.reason}")
    if state.message:
        lines.append(f"  now: {state.message}")
    lines.append(f"  next: {_next(state, live, now)}")
    if state.report_paths:
        lines.append(f"  report: {', '.join(state.report_paths)}")
    return lines


def _next(state: RolloutState, live: bool, now: float) -> str:
    if state.phase is Phase.PROMOTED and state.report_written:
        return "nothing: promoted"
    if state.phase in (Phase.ROLLED_BACK, Phase.ABORTED) and state.report_written:
        return "nothing: `rollout retry SPEC` starts it again from step 1"
    if state.phase is Phase.PAUSED:
        return (
            "a person decides: `rollout promote SPEC`, `rollout retry SPEC` or `rollout abort SPEC`"
        )
    if not live:
        return "nothing until `rollout run SPEC` resumes it (no run drives it now)"
    for what, outage in (("Prometheus", state.source_outage), ("the router", state.router_outage)):
        if outage is not None:
            return f"retry {what} at {stamp(outage.retry_at)} (in {outage.retry_at - now:.0f}s)"
    if state.phase.decided:
        return "confirm the final weights, then write the report"
    if not state.confirmed:
        return f"confirm weights {state.desired} by read-back"
    if state.history and state.last_look_end is not None:
        interval = state.history[-1].end - state.history[-1].start
        at = state.last_look_end + interval
        return f"next look about {stamp(at)} (in {max(0.0, at - now):.0f}s)"
    return "the first look of this step, one analysis interval after its weights were confirmed"


def _next_look(state: RolloutState) -> float | None:
    """When the next look is due, from the last look's length (the state has no policy)."""
    if state.phase.decided or not state.history or state.last_look_end is None:
        return None
    last = state.history[-1]
    return state.last_look_end + (last.end - last.start)


def status(
    state_dir: Path,
    name: str | None,
    *,
    watch: bool,
    timeout: float,
    console: Console,
    poll: float = 1.0,
    now: Callable[[], float] = time.time,
) -> ExitCode:
    store = LocalStateStore(state_dir)
    found = find(store, name)
    if isinstance(found, str):
        console.print(f"[bold red]no such rollout[/]: {escape(found)}")
        return ExitCode.BAD_INPUT
    _, path = found
    file = LocalFileStore(path)
    with live_panel(console, now, enabled=watch) as panel:
        return _wait(
            file, path, panel, watch=watch, timeout=timeout, console=console, poll=poll, now=now
        )


def _wait(
    file: LocalFileStore,
    path: Path,
    panel: LivePanel | None,
    *,
    watch: bool,
    timeout: float,
    console: Console,
    poll: float,
    now: Callable[[], float],
) -> ExitCode:
    """Print (or, on a terminal with --watch, show in the live panel) the rollout until it
    settles, stops being driven, or `timeout` runs out."""
    deadline = now() + timeout if timeout > 0 else math.inf
    shown: tuple[str, ...] = ()
    first = True
    while True:
        try:
            state = file.load()
        except StateError as exc:
            console.print(f"[bold red]unreadable state[/]: {escape(str(exc))}")
            return ExitCode.BAD_INPUT
        if state is None:
            console.print(f"[bold red]no such rollout[/]: {escape(str(path))} is gone")
            return ExitCode.BAD_INPUT
        live = driven(path)
        lines = tuple(describe(state, path, live, now()))
        settled = state.phase.decided and (state.report_written or not live)
        if panel is not None:
            panel.show(state, _next_look(state))
        elif first or (watch and lines[:-1] != shown[:-1]):
            console.print("\n".join(lines), markup=False, highlight=False)
        shown, first = lines, False
        if settled and state.phase in STATUS_EXIT_CODES:
            code = STATUS_EXIT_CODES[state.phase]
            console.print(f"{state.phase.value} (exit {int(code)})", markup=False)
            return code
        if not live:
            console.print(
                f"{state.phase.value}, but no `rollout run` drives it: it will not move until "
                f"one resumes it (exit {int(ExitCode.PAUSED)})",
                markup=False,
            )
            return ExitCode.PAUSED
        if now() >= deadline:
            console.print(
                f"still {state.phase.value} after {timeout:g}s (exit {int(TIMED_OUT)})",
                markup=False,
            )
            return TIMED_OUT
        time.sleep(poll)


def list_rollouts(state_dir: Path, console: Console) -> ExitCode:
    store = LocalStateStore(state_dir)
    entries = store.entries() if state_dir.is_dir() else []
    if not entries:
        console.print(f"no rollouts in {escape(str(state_dir))}")
        return ExitCode.PROMOTED
    rows = []
    for path, state, error in entries:
        if state is None:
            rows.append((path.name, "-", "unreadable", "-", error))
            continue
        which = "archived" if _archived(path) else "current"
        when = stamp(state.decided_at if state.decided_at is not None else state.updated_at)
        report = ", ".join(state.report_paths) or "-"
        t = state.target
        rows.append(
            (
                f"{state.name} ({which})",
                f"{t.baseline} -> {t.candidate}",
                state.phase.value,
                when,
                f"{report}  [{path.name}]",
            )
        )
    header = ("ROLLOUT", "VERSIONS", "OUTCOME", "WHEN", "REPORT  [STATE FILE]")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        console.print("  ".join([*cells, row[4]]), markup=False, highlight=False)
    return ExitCode.PROMOTED
