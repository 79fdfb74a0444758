"""`rollout run`, `promote`, `retry` and `abort`: a scheduler of one rollout, and its console.

The reconciler (`rollout/reconcile.py`) performs the engine's actions and saves the state
before each batch of them runs, so the intent (the weights about to be set) is on disk
before the router is touched: a crash anywhere resumes with the same desired weights, and
setting them again is idempotent. The scheduler (`rollout/scheduler.py`) waits for each
wake-up. This module is what stays a CLI's: the run lock, the preflight, printing what
happened, the exit code, and SIGTERM or Ctrl-C, which stop the scheduler and leave traffic
as it is; the next `rollout run` resumes. While a run holds the lock, `promote` and `abort`
reach it through its command file (`rollout/commands.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from rollout.alerts import Alert, AlertReceiver, AlertWebhook
from rollout.analysis.judge import resolution_warning
from rollout.analysis.observation import (
    MetricsSource,
    MetricsSourceError,
    Target,
)
from rollout.analysis.stats import version_error_rate, version_p95
from rollout.commands import Command, CommandBox
from rollout.engine import (
    DECISIONS,
    Event,
    Looked,
    ReportWritten,
    Resumed,
    Retry,
    Started,
)
from rollout.evidence.render import render_text
from rollout.evidence.report import SpanTiming
from rollout.exit_codes import ExitCode
from rollout.live import LivePanel, live_panel
from rollout.observe import Observer, Observers, reconcile_observed
from rollout.reconcile import (
    Advanced,
    Clock,
    EvidenceSettings,
    Happening,
    Reconciler,
    ReportDone,
    Rollout,
    SystemClock,
)
from rollout.routers.base import RouterError, TrafficRouter, Weights
from rollout.scheduler import Scheduler
from rollout.spec import AlertAction, Policy, RolloutSpec, SpecError
from rollout.state import (
    LocalQueryLog,
    LocalStateStore,
    Phase,
    RolloutState,
    StateError,
    StateLockedError,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "ABORT_EXIT_CODES",
    "EXIT_CODES",
    "Clock",
    "Driver",
    "EvidenceSettings",
    "Interrupted",
    "SystemClock",
    "abort_from_spec",
    "build_driver",
    "policy_digest",
    "promote_from_spec",
    "retry_from_spec",
    "run_from_spec",
]

EXIT_CODES = {
    Phase.PROMOTED: ExitCode.PROMOTED,
    Phase.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Phase.ABORTED: ExitCode.ROLLED_BACK,
    Phase.PAUSED: ExitCode.PAUSED,
}
# `rollout abort`: done (0) once all traffic is confirmed on the baseline.
ABORT_EXIT_CODES = {
    Phase.ABORTED: ExitCode.PROMOTED,
    Phase.ROLLED_BACK: ExitCode.PROMOTED,
}
# `rollout promote`: done (0) once the new weights are confirmed by read-back.
PROMOTE_EXIT_CODES = {
    Phase.PROMOTED: ExitCode.PROMOTED,
    Phase.PROGRESSING: ExitCode.PROMOTED,
    Phase.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Phase.ABORTED: ExitCode.ROLLED_BACK,
    Phase.PAUSED: ExitCode.PAUSED,
}
INTERRUPTED_RESUMABLE = "run the same command again to resume"
COMMAND_POLL_SECONDS = 0.25
COMMAND_TAKE_SECONDS = 30.0  # a run between its steps takes a command within a poll


class Interrupted(Exception):
    """SIGTERM: stop where we are; the saved state lets the next run resume."""


def policy_digest(policy: Policy) -> str:
    """What may not change under a saved rollout: its steps and how it is judged. What an
    alert does may change between runs, and leaving it out keeps the digests of rollouts
    saved before `alerts` existed, so they resume."""
    return hashlib.sha256(policy.model_dump_json(exclude={"alerts"}).encode()).hexdigest()[:16]


def state_key(namespace: str, name: str) -> str:
    return f"{namespace}-{name}"


class Driver:
    """Runs one rollout to a decision (or until interrupted) through a scheduler of one,
    saying what happens on the console."""

    def __init__(
        self,
        *,
        name: str,
        router: TrafficRouter,
        source: MetricsSource,
        store: LocalStateStore,
        policy: Policy,
        target: Target,
        evidence: EvidenceSettings,
        clock: Clock | None = None,
        console: Console | None = None,
        policy_source: str = "",
        key: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.name = name
        self.key = key or state_key("default", name)
        self.router = router
        self.source = source
        self.store = store
        self.state_file = store.file(self.key)
        self.commands = CommandBox(store.directory, self.key)
        self.policy = policy
        self.target = target
        self.clock = clock or SystemClock()
        self.console = console or Console()
        self.rollout = Rollout(
            key=self.key,
            name=name,
            target=target,
            policy=policy,
            router=router,
            source=source,
            evidence=evidence,
            policy_source=policy_source,
        )
        self.reconciler = Reconciler(store, self.clock, LocalQueryLog(store.directory))
        self.observer: Observer = observer or Observers()
        self._shown = ""
        self._summarised = False
        self._exit_codes: dict[Phase, ExitCode] = EXIT_CODES
        self._stop_when_confirmed = False  # `promote` without --full: the step, then stop
        self._scheduler: Scheduler | None = None  # while a command drives the rollout
        self._live: LivePanel | None = None

    def run(self) -> ExitCode:
        """Start or resume the rollout; StateLockedError / StateError when it cannot."""
        with self.store.lock(self.key):
            loaded = self.store.load(self.key)
            if loaded is None:
                if not self._preflight():
                    return ExitCode.INFRASTRUCTURE
                digest = policy_digest(self.policy)
                state = RolloutState.new(self.name, self.target, digest, self.clock.now())
                return self._schedule(Started(), state, None)
            state, version = loaded
            finished = state.phase.decided and state.phase is not Phase.PAUSED
            if self._is_another_rollout(state) and finished and _settled(state):
                # A new candidate (or policy) after a decision is a new rollout.
                if not self._preflight():
                    return ExitCode.INFRASTRUCTURE
                archived = self.store.archive(self.key, state)
                decided = DECISIONS[state.phase].replace("_", " ")
                self.console.print(
                    f"the earlier rollout {escape(state.name)} ({escape(state.target.baseline)}"
                    f" -> {escape(state.target.candidate)}) was {decided}: archived to "
                    f"{escape(str(archived))}; `rollout list` shows it",
                    highlight=False,
                )
                digest = policy_digest(self.policy)
                fresh = RolloutState.new(self.name, self.target, digest, self.clock.now())
                return self._schedule(Started(), fresh, version)
            self._check_resumable(state)
            return self._schedule(Resumed(), state, version)

    def promote(self, full: bool, reason: str) -> ExitCode:
        """A person's promotion of a progressing or paused rollout: `full`, all traffic to the
        candidate now (then the report); else the next step now, confirmed by read-back, and
        `rollout run` goes on from there. While a run drives it, the run is asked to.
        StateError when there is nothing to promote."""
        self._exit_codes = PROMOTE_EXIT_CODES
        self._stop_when_confirmed = not full
        command = Command("promote", reason, full)
        return self._act_or_ask(command, self._check_promotable)

    def _check_promotable(self, state: RolloutState) -> None:
        if state.policy_digest != policy_digest(self.policy):
            raise StateError(
                f"the saved rollout {state.name!r} ({self.state_file.path}) was started "
                "with another policy (its steps may differ): promote it with the spec and "
                "policy it was started with"
            )
        if state.phase is Phase.PROMOTED:
            raise StateError(
                f"rollout {state.name!r} was already promoted: all traffic is on "
                f"{state.target.candidate}; nothing to promote"
            )
        if state.phase in (Phase.ROLLED_BACK, Phase.ABORTED):
            decided = DECISIONS[state.phase].replace("_", " ")
            raise StateError(
                f"rollout {state.name!r} was {decided} ({state.reason}): nothing to promote; "
                "`rollout retry SPEC` starts it again from step 1"
            )
        if state.phase is Phase.PENDING:
            raise StateError(
                f"rollout {state.name!r} has not started: `rollout run SPEC` starts it"
            )

    def retry(self, reason: str) -> ExitCode:
        """A rolled-back, paused or aborted rollout again from step 1, run to its decision as
        `rollout run` does; the earlier attempt's state is archived first."""
        with self.store.lock(self.key):
            state, version = self._load_same("retry")
            if state.phase not in (Phase.ROLLED_BACK, Phase.PAUSED, Phase.ABORTED):
                what = (
                    "was promoted: all traffic is on the candidate"
                    if state.phase is Phase.PROMOTED
                    else f"is {state.phase.value}, not decided: `rollout run SPEC` resumes it"
                )
                raise StateError(f"rollout {state.name!r} {what}; nothing to retry")
            if state.policy_digest != policy_digest(self.policy):
                state = replace(state, policy_digest=policy_digest(self.policy))
            archived = self.store.archive(self.key, state)
            self.console.print(
                f"the earlier attempt is archived to {escape(str(archived))}; "
                "starting again from step 1",
                highlight=False,
            )
            return self._schedule(Retry(reason), state, version)

    def _load_same(self, verb: str) -> tuple[RolloutState, str]:
        loaded = self.store.load(self.key)
        if loaded is None:
            raise StateError(
                f"no saved rollout {self.name!r} ({self.state_file.path}): nothing to {verb}"
            )
        state, version = loaded
        if state.target != self.target:
            raise StateError(
                f"the saved rollout {state.name!r} ({self.state_file.path}) is "
                f"{state.target.baseline} -> {state.target.candidate}, not the spec's "
                f"{self.target.baseline} -> {self.target.candidate}: {verb} it with the spec "
                "it was started with"
            )
        return state, version

    def _is_another_rollout(self, state: RolloutState) -> bool:
        return state.target != self.target or state.policy_digest != policy_digest(self.policy)

    def abort(self, reason: str) -> ExitCode:
        """A person's abort of a saved rollout (paused, or stopped mid-step): all traffic
        back to the baseline, confirmed by read-back, then the report. While a run drives it,
        the run is asked to. StateError when there is nothing to abort."""
        self._exit_codes = ABORT_EXIT_CODES
        return self._act_or_ask(Command("abort", reason), self._check_abortable)

    def _check_abortable(self, state: RolloutState) -> None:
        if state.phase is Phase.PROMOTED:
            raise StateError(
                f"rollout {state.name!r} was already promoted: all traffic is on "
                f"{state.target.candidate}; to go back, roll the baseline out as a candidate"
            )
        if state.phase in (Phase.ABORTED, Phase.ROLLED_BACK) and _settled(state):
            decided = DECISIONS[state.phase].replace("_", " ")
            raise StateError(
                f"rollout {state.name!r} was already {decided} ({state.reason}): all traffic "
                f"is on {state.target.baseline}, nothing to abort"
            )

    # ------------------------------------------------------------------ a run's commands

    def _act_or_ask(self, command: Command, check: Callable[[RolloutState], None]) -> ExitCode:
        """`command` driven here under the rollout's lock, or, while a `rollout run` holds
        that lock, asked of the run; `check` refuses a state it cannot act on (StateError)."""
        held = contextlib.ExitStack()
        try:
            held.enter_context(self.store.lock(self.key))
        except StateLockedError:
            before, _ = self._load_same(command.verb)
            check(before)
            return self._ask_the_run(command, before)
        with held:
            state, version = self._load_same(command.verb)
            check(state)
            return self._schedule(command.event(), state, version)

    def _ask_the_run(self, command: Command, before: RolloutState) -> ExitCode:
        """Leave `command` for the run that drives the rollout and wait until its effect is
        confirmed by read-back (or the run decided otherwise)."""
        if not self.commands.post(command):
            raise StateError(
                f"an earlier command to the `rollout run` of {before.name!r} still waits "
                f"({self.commands.path}); wait for it, or remove that file if no run drives it"
            )
        self.console.print(
            f"a `rollout run` drives {escape(before.name)}: asked it to {command.wanted}",
            highlight=False,
        )
        taken_by = time.monotonic() + COMMAND_TAKE_SECONDS
        while self.commands.pending():
            if time.monotonic() >= taken_by and self.commands.withdraw():
                raise StateError(
                    f"the `rollout run` that holds {self.state_file.path} did not take the "
                    f"command within {COMMAND_TAKE_SECONDS:.0f}s (is it stuck?); nothing changed"
                )
            time.sleep(COMMAND_POLL_SECONDS)
        # The router may fail for up to the policy's limit before the run gives up on it.
        confirmed_by = time.monotonic() + self.policy.outage.max_duration + COMMAND_TAKE_SECONDS
        while time.monotonic() < confirmed_by:
            loaded = self.store.load(self.key)
            code = None if loaded is None else self._answered(command, before, loaded[0])
            if code is not None:
                return code
            time.sleep(COMMAND_POLL_SECONDS)
        self.console.print(
            f"the run took the command, but its weights are not confirmed yet: `rollout status "
            f"{escape(before.name)} --watch` follows it (exit {int(ExitCode.INFRASTRUCTURE)})",
            highlight=False,
        )
        return ExitCode.INFRASTRUCTURE

    def _answered(
        self, command: Command, before: RolloutState, state: RolloutState
    ) -> ExitCode | None:
        """The verb's exit code once the run has acted on `command`, None before."""
        if state.phase.decided and _settled(state):
            code = self._exit_codes.get(state.phase, ExitCode.BAD_INPUT)
            reports = ", ".join(state.report_paths) or "none written"
            self.console.print(
                f"rollout {escape(state.name)}: {state.phase.value} ({escape(state.reason)}), "
                f"weights {state.desired} confirmed by read-back; report: {escape(reports)} "
                f"(exit {int(code)})",
                highlight=False,
            )
            return code
        moved_on = state.phase is Phase.PROGRESSING and state.step > before.step
        if command.verb == "promote" and not command.full and moved_on and state.confirmed:
            self.console.print(
                f"rollout {escape(state.name)}: step {state.step + 1}, weights {state.desired} "
                f"confirmed by read-back; the run goes on from there (exit 0)",
                highlight=False,
            )
            return ExitCode.PROMOTED
        return None

    # ------------------------------------------------------------------ the scheduler of one

    def _schedule(self, event: Event, state: RolloutState, version: str | None) -> ExitCode:
        self.reconciler.track(self.rollout, event, state, version)
        scheduler = self._scheduler = Scheduler(self._step, self.clock)
        scheduler.add(self.key)
        with (
            live_panel(self.console, self.clock.now, self.policy) as self._live,
            self._taking_commands(),
        ):
            scheduler.run()  # SIGTERM and Ctrl-C raise through it: the scheduler stops there
        final = self.reconciler.state(self.key)
        assert final is not None
        return self._finish(final)

    def signal(self, event: Event) -> None:
        """An outside event (an alert) from another thread: the engine takes it now, or at
        the start if the rollout is not driven yet."""
        self.reconciler.signal(self.key, event)
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.add(self.key)  # due now: the wait for the next look is cut short

    @contextlib.contextmanager
    def _taking_commands(self) -> Iterator[None]:
        """While this process drives the rollout, `rollout promote` and `rollout abort` of it
        reach the engine through the command file. One left from before is not obeyed."""
        if self.commands.take() is not None:
            self.console.print(
                f"ignored a command left in {self.commands.path} before this run; "
                "give it again if it still stands",
                highlight=False,
            )
        stop = threading.Event()

        def take() -> None:
            while not stop.wait(COMMAND_POLL_SECONDS):
                command = self.commands.take()
                if command is not None:
                    self.console.print(
                        f"`rollout {command.verb}` asks to {command.wanted}: "
                        f"{escape(command.reason)}",
                        highlight=False,
                    )
                    self.signal(command.event())

        taker = threading.Thread(target=take, name=f"commands of {self.key}", daemon=True)
        taker.start()
        try:
            yield
        finally:
            stop.set()
            taker.join()

    def deliver_alert(self, model: str, version: str, alert: Alert) -> bool:
        """The alert webhook's callback: only an alert on this rollout's candidate counts."""
        if (model, version) != (self.target.model, self.target.candidate):
            return False
        self.signal(alert.fired())
        return True

    def _step(self, key: str) -> float | None:
        outcome = reconcile_observed(self.reconciler, self.rollout, self.observer)
        for happening in outcome.happened:
            self._show(happening)
        state = outcome.state
        if self._live is not None:  # a terminal: the panel, beside the lines above it
            self._live.show(state, outcome.wake_at)
        if self._stop_when_confirmed and state.phase is Phase.PROGRESSING and state.confirmed:
            return None  # the promoted step is applied; `rollout run` goes on from here
        return outcome.wake_at

    def _preflight(self) -> bool:
        """Before any traffic moves: can we read the router and Prometheus at all?"""
        now = self.clock.now()
        try:
            current = self.router.get_weights()
            recent = self.source.observe(self.target, now - self.policy.analysis.interval, now)
        except (RouterError, MetricsSourceError) as exc:
            self.console.print(
                f"[bold red]cannot start[/]: {escape(str(exc))}; no traffic was changed"
            )
            return False
        warning = resolution_warning(recent, self.policy)
        if warning:
            self.console.print(f"[yellow]warning[/]: {escape(warning)}")
        self.console.print(
            f"starting rollout {escape(self.name)}: {escape(self.target.candidate)} against "
            f"{escape(self.target.baseline)}, router weights now {current}"
        )
        return True

    def _check_resumable(self, state: RolloutState) -> None:
        if not self._is_another_rollout(state):
            return
        path = self.state_file.path
        if state.phase is Phase.PAUSED:
            fix = (
                "decide it first with the spec it was started with: `rollout abort SPEC` (then "
                "this run starts the new one), `rollout promote SPEC` or `rollout retry SPEC`"
            )
        else:
            fix = (
                "restore the spec and policy it was started with and `rollout run` it to its "
                "decision, or `rollout abort` it with that spec; then run this one "
                f"(or remove {path} to forget it)"
            )
        raise StateError(
            f"the saved rollout {state.name!r} in {path} is {state.phase.value} with "
            f"{state.target.baseline} -> {state.target.candidate} (another target or policy "
            f"than this spec's {self.target.baseline} -> {self.target.candidate}); {fix}"
        )

    def _finish(self, state: RolloutState) -> ExitCode:
        if (
            not self._summarised and state.phase.decided
        ):  # decided by an earlier run: say what it decided
            report = self.reconciler.report(self.key, state)
            self.console.print(render_text(report), markup=False, end="")
        code = self._exit_codes.get(state.phase, ExitCode.INFRASTRUCTURE)
        then = ""
        if state.phase is Phase.PROGRESSING:
            then = f"; `rollout run SPEC` goes on with the analysis at step {state.step + 1}"
        self.console.print(
            f"rollout {escape(state.name)}: {state.phase.value}, weights {state.desired} "
            f"(exit {int(code)}){escape(then)}"
        )
        return code

    # ------------------------------------------------------------------ progress

    def _show(self, happening: Happening) -> None:
        if isinstance(happening, ReportDone):
            self._show_report(happening)
            return
        assert isinstance(happening, Advanced)
        state, event = happening.state, happening.event
        if isinstance(event, Looked) and state.judgement is not None:
            self.console.print(_look_line(state, happening.before, event), highlight=False)
        if isinstance(event, ReportWritten) and not event.paths:
            self._shown = state.message  # no file was written: the lines above say so
        if state.message and state.message != self._shown:
            self._shown = state.message
            self.console.print(f"  {escape(state.message)}", highlight=False)

    def _show_report(self, done: ReportDone) -> None:
        report_dir = self.rollout.evidence.report_dir
        self.console.print(render_text(done.report), markup=False, highlight=False, end="")
        self._summarised = True
        for fmt, path in done.paths.items():
            self.console.print(f"report ({fmt}): {path}", markup=False, highlight=False)
        if done.failure:
            self.console.print(
                f"warning: the report files could not be written to "
                f"{report_dir} ({done.failure}); the summary above is all there is",
                markup=False,
                highlight=False,
            )
        elif report_dir is None:
            self.console.print(
                "no report files written: give --report-dir DIR to keep report.json, report.md "
                "and report.html",
                markup=False,
                highlight=False,
            )


def _settled(state: RolloutState) -> bool:
    """Decided, its final weights confirmed (if it moved traffic) and its report written."""
    moved = state.started_at is not None
    return state.report_written and (state.confirmed or not moved)


def _look_line(state: RolloutState, weights: Weights, looked: Looked) -> str:
    """One look: this look's own P95 and error rate, and the judge's figures over every look
    so far (what it decides on), each labelled."""
    judgement = state.judgement
    assert judgement is not None
    comparisons = {c.metric: c for c in judgement.comparisons}
    look = looked.observation  # the state keeps the same numbers

    def pair(values: tuple[float | None, float | None], scale: float, unit: str) -> str:
        if any(v is None or not math.isfinite(v) for v in values):
            return "n/a"
        baseline, candidate = (float(v) * scale for v in values if v is not None)
        return f"{baseline:.1f}{unit} -> {candidate:.1f}{unit}"

    def so_far(metric: str) -> tuple[float | None, float | None]:
        c = comparisons.get(metric)
        return (None, None) if c is None else (c.baseline, c.candidate)

    p95 = (version_p95(look.baseline), version_p95(look.candidate))
    errors = (version_error_rate(look.baseline), version_error_rate(look.candidate))
    colour = {"FAIL": "red"}.get(judgement.verdict.value, "yellow")
    return (
        f"look {len(state.history)} at weights {weights}: "
        f"P95 this look {pair(p95, 1000.0, ' ms')} "
        f"(all looks {pair(so_far('latency_p95'), 1000.0, ' ms')}), "
        f"errors this look {pair(errors, 100.0, '%')} "
        f"(all looks {pair(so_far('error_rate'), 100.0, '%')}) "
        f"[{colour}]{escape(judgement.verdict.value)}[/]"
    )


# ---------------------------------------------------------------------------- the CLI's entry


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_driver(
    spec: RolloutSpec,
    policy: Policy,
    *,
    state_dir: Path,
    report_dir: Path | None,
    console: Console,
    clock: Clock | None = None,
    spans_lookup: Callable[[str], tuple[SpanTiming, ...]] | None = None,
    observers: Sequence[Observer] = (),
) -> Driver:
    """The spec's router, Prometheus source, notifications and state file; SpecError when
    one is unusable. `observers` watch every tick beside the spec's notifications."""
    from rollout.analysis.prometheus import PrometheusSource
    from rollout.notify import build_notifier
    from rollout.routers import build_router
    from rollout.routers.base import RouterPlace

    body = spec.spec
    meta = spec.metadata
    notifier = build_notifier(body.notifications)
    watching = [*observers, notifier] if notifier is not None else list(observers)
    return Driver(
        name=meta.name,
        router=build_router(body.router, RouterPlace(meta.namespace, _kube_client)),
        source=PrometheusSource(body.prometheus, policy.metrics, policy.custom_metrics),
        store=LocalStateStore(state_dir),
        key=state_key(meta.namespace, meta.name),
        policy=policy,
        target=Target(body.model, body.baseline.version, body.candidate.version),
        evidence=EvidenceSettings(
            trace_link_template=body.evidence.trace_link_template,
            max_exemplars=body.evidence.max_exemplars,
            report_dir=report_dir,
            spans_lookup=spans_lookup,
        ),
        clock=clock,
        console=console,
        policy_source=body.policy if isinstance(body.policy, str) else "",
        observer=Observers(watching),
    )


def _kube_client() -> ApiClient:
    """A Kubernetes router's API client: $KUBECONFIG, ~/.kube/config, else in-cluster."""
    from rollout.k8s.api import KubeConfigError, connect

    try:
        return connect()
    except KubeConfigError as exc:
        raise RouterError(str(exc)) from None


def run_from_spec(
    spec: RolloutSpec,
    policy: Policy,
    *,
    state_dir: Path,
    report_dir: Path | None,
    console: Console,
    clock: Clock | None = None,
    spans_lookup: Callable[[str], tuple[SpanTiming, ...]] | None = None,
    on_interrupt: str = INTERRUPTED_RESUMABLE,
    alert_webhook: AlertWebhook | None = None,
    observers: Sequence[Observer] = (),
) -> ExitCode:
    """`rollout run`: 0 promoted, 1 rolled back, 2 paused or interrupted, 3 bad input or
    locked by another run, 4 router or Prometheus unreachable before any traffic moved (or
    the alert webhook's port taken). `on_interrupt` ends the message printed when it is
    interrupted (what to do next); `alert_webhook` receives Alertmanager's notifications
    while it runs."""
    return _drive(
        lambda: build_driver(
            spec,
            policy,
            state_dir=state_dir,
            report_dir=report_dir,
            console=console,
            clock=clock,
            spans_lookup=spans_lookup,
            observers=observers,
        ),
        Driver.run if alert_webhook is None else partial(_run_with_alerts, alert_webhook, console),
        console,
        on_interrupt,
    )


def _run_with_alerts(webhook: AlertWebhook, console: Console, driver: Driver) -> ExitCode:
    """`Driver.run` with the alert webhook listening until the run ends."""
    labels = driver.policy.metrics
    try:
        receiver = AlertReceiver(
            webhook.secret,
            driver.deliver_alert,
            address=webhook.address,
            port=webhook.port,
            model_label=labels.model_label,
            version_label=labels.version_label,
        )
    except OSError as exc:
        console.print(
            f"[bold red]cannot start[/]: --alert-webhook-port: cannot listen on "
            f"{escape(webhook.address)}:{webhook.port} ({escape(exc.strerror or str(exc))}); "
            "no traffic was changed"
        )
        return ExitCode.INFRASTRUCTURE
    with receiver.start():
        does = "pauses" if driver.policy.alerts.action is AlertAction.PAUSE else "rolls back"
        console.print(
            f"alert webhook: {escape(receiver.url)} (a firing alert on "
            f"{escape(driver.target.candidate)} {does} the rollout)",
            highlight=False,
        )
        return driver.run()


def abort_from_spec(
    spec: RolloutSpec,
    policy: Policy,
    *,
    reason: str,
    state_dir: Path,
    report_dir: Path | None,
    console: Console,
    clock: Clock | None = None,
) -> ExitCode:
    """`rollout abort`: 0 once all traffic is confirmed on the baseline (aborted now, or a
    rollback or abort that had not finished is finished now), 3 when there is nothing to abort
    (no saved rollout; already promoted, rolled back or aborted) or a live run holds it."""
    return _drive(
        lambda: build_driver(
            spec, policy, state_dir=state_dir, report_dir=report_dir, console=console, clock=clock
        ),
        lambda driver: driver.abort(reason),
        console,
        "run the same command again to finish the abort",
    )


def promote_from_spec(
    spec: RolloutSpec,
    policy: Policy,
    *,
    full: bool,
    reason: str,
    state_dir: Path,
    report_dir: Path | None,
    console: Console,
    clock: Clock | None = None,
) -> ExitCode:
    """`rollout promote`: 0 once the new weights are confirmed by read-back, 1 when the
    router failed past the policy's limit and the rollout rolled back, 3 when there is nothing
    to promote (no saved rollout; already decided; not started) or a live run holds it."""
    return _drive(
        lambda: build_driver(
            spec, policy, state_dir=state_dir, report_dir=report_dir, console=console, clock=clock
        ),
        lambda driver: driver.promote(full, reason),
        console,
        "run the same command again to finish the promotion",
    )


def retry_from_spec(
    spec: RolloutSpec,
    policy: Policy,
    *,
    reason: str,
    state_dir: Path,
    report_dir: Path | None,
    console: Console,
    clock: Clock | None = None,
) -> ExitCode:
    """`rollout retry`: from step 1 to the decision, exit codes as `rollout run`'s; 3 when
    there is nothing to retry (no saved rollout, promoted, or not decided) or a run holds it."""
    return _drive(
        lambda: build_driver(
            spec, policy, state_dir=state_dir, report_dir=report_dir, console=console, clock=clock
        ),
        lambda driver: driver.retry(reason),
        console,
        INTERRUPTED_RESUMABLE,
    )


def _drive(
    build: Callable[[], Driver],
    go: Callable[[Driver], ExitCode],
    console: Console,
    on_interrupt: str,
) -> ExitCode:
    """Build the driver and run `go` on it, turning refusals and interrupts into exit codes."""
    try:
        driver = build()
    except SpecError as exc:
        console.print(f"[bold red]invalid input[/] {escape(str(exc))}")
        return ExitCode.BAD_INPUT
    try:
        with _sigterm_interrupts():
            return go(driver)
    except StateLockedError as exc:
        console.print(
            f"[bold red]cannot run[/]: {escape(str(exc))}; stop that run first (Ctrl-C leaves "
            "traffic as it is and saves the state)"
        )
        return ExitCode.BAD_INPUT
    except StateError as exc:
        console.print(f"[bold red]cannot run[/]: {escape(str(exc))}")
        return ExitCode.BAD_INPUT
    except (Interrupted, KeyboardInterrupt):
        console.print(
            f"interrupted (exit {int(ExitCode.PAUSED)}): nothing decided, traffic left as it is, "
            f"state saved in {escape(repr(driver.state_file))}; {escape(on_interrupt)}",
            soft_wrap=True,
        )
        return ExitCode.PAUSED
    finally:
        driver.source.close()
        driver.observer.close()  # queued notifications go out now (bounded)
