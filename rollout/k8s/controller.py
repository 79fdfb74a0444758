"""`rollout controller`: ModelRollouts driven by a level-triggered loop.

A watcher thread lists, then watches ModelRollouts from the list's resourceVersion (a 410
Gone relists), keeping a cache and adding each changed key to a work queue: the scheduler
(`rollout/scheduler.py`), which runs a key on a worker never twice at once, at the earliest
time asked (a watch event: now; the reconciler's wake-up: its time; a failure: a backoff).
A periodic resync adds every key again. `sync(key)` compares the resource with what this
process drives and acts: start, resume (after a restart, from `status`), a new candidate,
a person's request, the finalizer on deletion, or one reconcile when due. The state is
written to `status` at the resourceVersion read (`store.py`); a 409 reloads and retries.

With leader election only the Lease holder has a scheduler, and every write (status,
router, Events) is fenced on the lease (`leader.py`); a new leader starts from `status`.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from rollout.alerts import Alert, Unavailable
from rollout.analysis.observation import MetricsSource, MetricsSourceError, Target
from rollout.driver import policy_digest
from rollout.engine import Abort, Event, Promote, Resumed, Retry, Started, Tick
from rollout.k8s.api import (
    FINALIZER,
    GONE,
    Object,
    RolloutApi,
    WatchEvent,
    api_reason,
    key_of,
)
from rollout.k8s.events import NORMAL, WARNING, EventRecorder, Notice, notices
from rollout.k8s.leader import LeaderElector
from rollout.k8s.resource import (
    Accepted,
    Refused,
    Request,
    answered_request,
    generation_of,
    refusal,
    request_of,
    validate,
)
from rollout.k8s.status import RequestStatus
from rollout.k8s.store import RolloutGone, StatusStore
from rollout.observe import Observer, Observers, reconcile_observed
from rollout.reconcile import (
    ASKED_FOR_LOOK,
    Clock,
    EvidenceSettings,
    Outcome,
    Reconciler,
    ReportDone,
    Rollout,
    SystemClock,
)
from rollout.routers.base import (
    MissingObject,
    RouterError,
    RouterPlace,
    TrafficRouter,
    Weights,
)
from rollout.scheduler import Scheduler
from rollout.spec import FieldProblem, Policy, PrometheusConfig, RouterConfig
from rollout.state import Phase, RolloutState, StateConflict, StateError

log = logging.getLogger(__name__)
RESYNC: Final = "\x00resync"  # the scheduler's key for the periodic resync (no resource has it)
MAX_BACKOFF: Final = 60.0


RouterFactory = Callable[[RouterConfig, RouterPlace], TrafficRouter]
SourceFactory = Callable[[PrometheusConfig, Policy], MetricsSource]


def default_router(config: RouterConfig, place: RouterPlace) -> TrafficRouter:
    from rollout.routers import build_router

    return build_router(config, place)


def default_source(config: PrometheusConfig, policy: Policy) -> MetricsSource:
    from rollout.analysis.prometheus import shared_source

    return shared_source(config, policy.metrics, policy.custom_metrics)


def _unfenced() -> None:
    return None


class RouterObjectMissing(Exception):
    """Before the start: the object the spec names for the router does not exist."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class PreflightFailed(Exception):
    """A new rollout cannot start: the router or Prometheus cannot be read. No traffic moved."""


class FencedRouter:
    """Moves traffic only while this process may write (it holds the lease)."""

    def __init__(self, router: TrafficRouter, fence: Callable[[], None]) -> None:
        self.router = router
        self.fence = fence

    def get_weights(self) -> Weights:
        return self.router.get_weights()

    def set_weights(self, weights: Weights) -> None:
        self.fence()
        self.router.set_weights(weights)

    def verify(self, weights: Weights) -> bool | None:
        return self.router.verify(weights)


@dataclass(frozen=True)
class ControllerSettings:
    namespace: str | None = None  # None: every namespace
    workers: int = 4
    resync_seconds: float = 300.0
    watch_seconds: int = 300  # one watch request's length; the next resumes where it ended
    identity: str = ""  # written to status.writer


@dataclass
class _Entry:
    """A key this term drives: the generation and request it acted on, when it is due."""

    generation: int
    wake_at: float | None


@dataclass
class _Term:
    """One leadership term: fresh reconciler, store and queue (resumed from `status`)."""

    reconciler: Reconciler
    store: StatusStore
    scheduler: Scheduler
    entries: dict[str, _Entry] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    announced: dict[str, str] = field(default_factory=dict)  # key -> refused spec announced
    cannot_start: dict[str, str] = field(default_factory=dict)  # key -> preflight announced
    thread: threading.Thread | None = None


class Controller:
    def __init__(
        self,
        api: RolloutApi,
        settings: ControllerSettings,
        *,
        clock: Clock | None = None,
        fence: Callable[[], None] = _unfenced,
        router_factory: RouterFactory = default_router,
        source_factory: SourceFactory = default_source,
        observer: Observer | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        self.observer: Observer = observer or Observers()  # metrics, JSON logs
        self.clock = clock or SystemClock()
        self.fence = fence
        self.router_factory = router_factory
        self.source_factory = source_factory
        self.recorder = EventRecorder(api, self.clock.now, fence, settings.identity)
        self.cache: dict[str, Object] = {}
        self.synced = threading.Event()  # the first list is in the cache
        self.stopping = threading.Event()
        self._cache_lock = threading.Lock()
        self._term: _Term | None = None
        self._term_lock = threading.Lock()
        self._watcher: Any = None  # the running kubernetes.watch.Watch
        self._watch_thread: threading.Thread | None = None
        self.term_writes = 0  # status writes of past terms (plus the current: `writes`)

    # ------------------------------------------------------------------ lifecycle

    def start_watching(self) -> None:
        self._watch_thread = threading.Thread(target=self._watch_loop, name="watch", daemon=True)
        self._watch_thread.start()

    def stop(self) -> None:
        """Ask everything to stop (safe from a signal handler)."""
        self.stopping.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.stop()

    def lead(self) -> None:
        """Start acting: a fresh term whose queue holds every cached key."""
        store = StatusStore(self.api, self.clock.now, self.fence, self.settings.identity)
        # Batched looks: the rollouts due at one moment ask, then one query per signal reads
        # them all (per Prometheus), however many there are.
        reconciler = Reconciler(store, self.clock, batch_looks=True)
        scheduler = Scheduler(
            self._step,
            self.clock,
            workers=max(1, self.settings.workers),
            on_idle=reconciler.read_looks,
        )
        term = _Term(reconciler, store, scheduler)
        with self._term_lock:
            self._term = term
        with self._cache_lock:
            keys = list(self.cache)
        for key in keys:
            scheduler.add(key)
        scheduler.add(RESYNC, self.clock.now() + self.settings.resync_seconds)
        term.thread = threading.Thread(target=self._run_term, args=(term,), name="workers")
        term.thread.start()

    def unlead(self) -> None:
        """Stop acting: no new step starts; running ones finish (their writes are fenced)."""
        with self._term_lock:
            term, self._term = self._term, None
        if term is None:
            return
        term.scheduler.stop()
        if term.thread is not None:
            term.thread.join()
        self.term_writes += term.store.writes

    @property
    def writes(self) -> int:
        term = self._term
        return self.term_writes + (term.store.writes if term is not None else 0)

    def alive(self) -> str:
        """Liveness: '' when the watcher (and the workers, when leading) run."""
        if self._watch_thread is not None and not self._watch_thread.is_alive():
            return "the watch loop has stopped"
        term = self._term
        if term is not None and term.thread is not None and not term.thread.is_alive():
            return "the workers have stopped"
        return ""

    def ready(self) -> str:
        return "" if self.synced.is_set() else "the first list of ModelRollouts is not done"

    def _run_term(self, term: _Term) -> None:
        try:
            term.scheduler.run(self.stopping)
        except Exception:  # a bug in the loop itself: liveness reports it, the pod restarts
            log.exception("the work queue stopped")

    def deliver_alert(self, model: str, version: str, alert: Alert) -> bool:
        """The alert webhook's callback: a firing alert on the candidate of the rollouts it
        names reaches each of them now (the engine pauses or rolls back, per the policy)."""
        term = self._term
        if term is None:
            raise Unavailable("this controller replica is not the leader; the leader acts")
        hit = False
        for key in list(term.entries):
            state = term.reconciler.state(key)
            if state is None or (state.target.model, state.target.candidate) != (model, version):
                continue
            term.reconciler.signal(key, alert.fired())
            term.scheduler.add(key)
            hit = True
        return hit

    def _enqueue(self, key: str) -> None:
        term = self._term
        if term is not None:
            term.scheduler.add(key)

    # ------------------------------------------------------------------ list + watch

    def _watch_loop(self) -> None:
        namespace = self.settings.namespace
        version: str | None = None
        failures = 0
        while not self.stopping.is_set():
            try:
                if version is None:
                    items, version = self.api.list_all(namespace)
                    self._replace_cache(items)
                    self.synced.set()
                watcher, events = self.api.watch(namespace, version, self.settings.watch_seconds)
                self._watcher = watcher
                if self.stopping.is_set():
                    watcher.stop()
                for event in events:
                    version = self._apply(event) or version
                    if self.stopping.is_set():
                        break
                failures = 0
            except ApiException as exc:
                if exc.status == GONE:
                    log.info("watch from %s expired (410 Gone): listing again", version)
                    version = None
                    continue
                failures += 1
                log.warning("watching ModelRollouts: %s", api_reason(exc))
            except ProtocolError as exc:  # the server ended the stream: watch on from there
                log.debug("watch ended: %s", exc)
            except Exception as exc:  # the API unreachable: retry after a backoff
                failures += 1
                log.warning("watching ModelRollouts: %s", exc)
            if failures:
                self.stopping.wait(min(2.0**failures, 30.0))

    def _apply(self, event: WatchEvent) -> str | None:
        meta = event.obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if event.kind == "BOOKMARK" or "name" not in meta:
            return str(version) if version else None
        key = key_of(event.obj)
        with self._cache_lock:
            if event.kind == "DELETED":
                self.cache.pop(key, None)
            else:
                self.cache[key] = event.obj
        self._enqueue(key)
        return str(version) if version else None

    def _replace_cache(self, items: list[Object]) -> None:
        fresh = {key_of(obj): obj for obj in items}
        with self._cache_lock:
            gone = set(self.cache) - set(fresh)
            self.cache = fresh
        for key in [*fresh, *gone]:
            self._enqueue(key)

    # ------------------------------------------------------------------ one key

    def _step(self, key: str) -> float | None:
        term = self._term
        if term is None:
            return None
        if key == RESYNC:
            with self._cache_lock:
                keys = list(self.cache)
            for each in keys:
                term.scheduler.add(each)
            return self.clock.now() + self.settings.resync_seconds
        try:
            wake = self.sync(term, key)
            term.failures.pop(key, None)
            if term.store.context(key).error:
                self._report_error(term, key, None)
            return wake
        except StateConflict as exc:
            if not self.fence_ok():
                return None  # the lease is lost: this term is ending
            log.info("%s: %s; reloading", key, exc)
            return self._retry(term, key, quick=True)
        except RolloutGone:
            self._forget(term, key)
            return None
        except RouterObjectMissing as exc:  # the spec names what is not there: InvalidSpec
            problem = FieldProblem(path=exc.field, message=str(exc))
            with self._cache_lock:
                obj = self.cache.get(key)
            if obj is None:
                return None
            self._refuse(term, key, obj, Refused((problem,), generation_of(obj)))
            return self._retry(term, key)  # created later: the rollout starts then
        except PreflightFailed as exc:
            why = f"cannot start: {exc}; no traffic was moved"
            self._report_error(term, key, why)
            self._warn_cannot_start(term, key, why)
            return self._retry(term, key)
        except (ApiException, StateError, MetricsSourceError, RouterError, OSError) as exc:
            why = api_reason(exc) if isinstance(exc, ApiException) else str(exc)
            log.warning("%s: %s", key, why)
            self._report_error(term, key, why)
            return self._retry(term, key)
        except Exception as exc:
            log.exception("%s: reconcile failed", key)
            self._report_error(term, key, f"{type(exc).__name__}: {exc}")
            return self._retry(term, key)

    def fence_ok(self) -> bool:
        try:
            self.fence()
        except StateConflict:
            return False
        return True

    def _retry(self, term: _Term, key: str, quick: bool = False) -> float:
        failures = term.failures.get(key, 0) + 1
        term.failures[key] = failures
        entry = term.entries.get(key)
        if entry is not None:
            entry.wake_at = self.clock.now()  # due again as soon as the backoff ends
        base, most = (0.05, 2.0) if quick else (1.0, MAX_BACKOFF)
        delay: float = min(base * 2.0 ** min(failures - 1, 12), most)
        return self.clock.now() + delay

    def _report_error(self, term: _Term, key: str, why: str | None) -> None:
        """Show (or clear) the failure as the ReconcileError condition, if the API lets us."""
        term.store.set_context(key, error=why or "")
        try:
            term.store.write_context(key)
        except Exception as exc:  # the API is what fails: the log has it
            log.debug("%s: condition not written: %s", key, exc)

    def _forget(self, term: _Term, key: str) -> None:
        term.reconciler.forget(key)
        term.store.forget(key)
        term.entries.pop(key, None)
        term.failures.pop(key, None)
        term.announced.pop(key, None)
        term.cannot_start.pop(key, None)

    def sync(self, term: _Term, key: str) -> float | None:
        with self._cache_lock:
            obj = self.cache.get(key)
        if obj is None:
            self._forget(term, key)
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return self._finalize(term, key, obj)
        if FINALIZER not in (obj["metadata"].get("finalizers") or []):
            obj = self._add_finalizer(key, obj)
        judged = validate(obj)
        if isinstance(judged, Refused):
            return self._refuse(term, key, obj, judged)
        request = request_of(obj)
        if request is not None and request.id == answered_request(obj):
            request = None
        entry = term.entries.get(key)
        if entry is None or entry.generation != judged.generation or request is not None:
            self._track(term, key, obj, judged, request)
            entry = term.entries[key]
        now = self.clock.now()
        if entry.wake_at is None:
            return None
        if now < entry.wake_at != ASKED_FOR_LOOK and not term.reconciler.signalled(key):
            return entry.wake_at  # (an asked look may have been answered; an alert is now)
        if term.store.context(key).error:
            term.store.set_context(key, error="")  # cleared by this reconcile's save
        before = term.reconciler.state(key)
        rollout = term.reconciler.rollout(key)
        assert rollout is not None  # tracked above
        outcome = reconcile_observed(term.reconciler, rollout, self.observer)  # a tick span
        entry.wake_at = outcome.wake_at
        self._announce(term, key, obj, outcome, before)
        return outcome.wake_at

    # ------------------------------------------------------------------ tracking

    def _rollout(self, key: str, obj: Object, accepted: Accepted) -> Rollout:
        meta = obj["metadata"]
        body, policy = accepted.spec.spec, accepted.policy
        # Kubernetes routers act with the controller's own client (its service account).
        api_client = self.api.api_client
        place = RouterPlace(meta["namespace"], lambda: api_client)
        return Rollout(
            key=key,
            name=meta["name"],
            target=Target(body.model, body.baseline.version, body.candidate.version),
            policy=policy,
            router=FencedRouter(self.router_factory(body.router, place), self.fence),
            source=self.source_factory(body.prometheus, policy),
            evidence=EvidenceSettings(
                trace_link_template=body.evidence.trace_link_template,
                max_exemplars=body.evidence.max_exemplars,
            ),
            policy_source=body.policy if isinstance(body.policy, str) else "",
        )

    def _track(
        self,
        term: _Term,
        key: str,
        obj: Object,
        accepted: Accepted,
        request: Request | None,
    ) -> None:
        """(Re)start driving `key` from its status; PreflightFailed when a new one cannot."""
        rollout = self._rollout(key, obj, accepted)
        store = term.store
        store.set_context(
            key,
            generation=accepted.generation,
            steps=len(accepted.policy.steps),
            problems=(),
            error="",  # the last attempt's failure; this one writes its own
        )
        loaded = store.load(key)
        answered = store.context(key).request
        if request is not None and answered is not None and answered.id == request.id:
            request = None  # answered since the cache's copy was read
        known = store.known(key)
        assert known is not None
        version = known[0]
        now = self.clock.now()
        digest = policy_digest(accepted.policy)
        event: Event
        if loaded is None:
            if request is not None:
                self._answer(term, key, obj, request, refusal(request.action, None))
            self._preflight(rollout, now)
            term.cannot_start.pop(key, None)  # a later failure is news again
            state = RolloutState.new(rollout.name, rollout.target, digest, now)
            event = Started()
        else:
            state, version = loaded
            same_target = state.target == rollout.target
            restart = not same_target or (state.policy_digest != digest and not state.phase.decided)
            if restart:
                notice = _replaced(state, rollout.target, same_target)
                self.recorder.record(obj, notice)
                state = RolloutState.new(rollout.name, rollout.target, digest, now)
                event = Started()
            elif request is not None:
                why = refusal(request.action, state)
                self._answer(term, key, obj, request, why)
                event = _request_event(request) if why is None else Resumed()
            elif key in term.entries:
                event = Tick()  # the same rollout under a new generation (e.g. evidence)
            else:
                event = Resumed()
                if not state.phase.decided:
                    message = (
                        f"resumed from status at step {state.step + 1}, weights {state.desired}"
                    )
                    self.recorder.record(obj, Notice(NORMAL, "Resumed", message))
        term.reconciler.track(rollout, event, state, version)
        term.entries[key] = _Entry(accepted.generation, now)

    def _preflight(self, rollout: Rollout, now: float) -> None:
        """Before any traffic moves: can the router and Prometheus be read at all?"""
        try:
            rollout.router.get_weights()
            interval = rollout.policy.analysis.interval
            rollout.source.observe(rollout.target, now - interval, now)
        except MissingObject as exc:
            raise RouterObjectMissing(str(exc), exc.field) from None
        except (RouterError, MetricsSourceError) as exc:
            raise PreflightFailed(str(exc)) from None

    def _warn_cannot_start(self, term: _Term, key: str, why: str) -> None:
        """An Event beside the ReconcileError condition, once per reason (retries repeat it)."""
        with self._cache_lock:
            obj = self.cache.get(key)
        if obj is None or term.cannot_start.get(key) == why:
            return
        term.cannot_start[key] = why
        self.recorder.record(obj, Notice(WARNING, "CannotStart", why))

    def _answer(
        self, term: _Term, key: str, obj: Object, request: Request, why: str | None
    ) -> None:
        """The request's answer goes in status: an acceptance with the state it changes (the
        next save), a refusal now; an Event either way."""
        accepted = why is None
        message = request.reason if accepted else f"refused: {why}"
        answer = RequestStatus(
            id=request.id, action=request.action, accepted=accepted, message=message
        )
        term.store.set_context(key, request=answer)
        if not accepted:
            term.store.write_context(key)
        kind, reason = (NORMAL, "Requested") if accepted else (WARNING, "RequestRefused")
        self.recorder.record(obj, Notice(kind, reason, f"{request.action}: {message}"))

    def _announce(
        self,
        term: _Term,
        key: str,
        obj: Object,
        outcome: Outcome,
        before: RolloutState | None,
    ) -> None:
        for notice in notices(outcome.happened, before):
            self.recorder.record(obj, notice)
        trouble = _router_trouble(before, outcome.state)
        if trouble is not None:
            self.recorder.record(obj, trouble)
        for happening in outcome.happened:
            if isinstance(happening, ReportDone):
                ids = tuple(e.trace_id for e in happening.report.evidence)
                term.store.set_context(key, trace_ids=ids)
                term.store.write_context(key)

    # ------------------------------------------------------------------ refusals, deletion

    def _refuse(self, term: _Term, key: str, obj: Object, refused: Refused) -> float | None:
        """A spec the schema admits but the validation refuses: traffic stays as it is, the
        problems go to the InvalidSpec condition and an Event; a fixed spec resumes."""
        term.reconciler.forget(key)
        term.entries.pop(key, None)
        term.store.set_context(key, generation=refused.generation, problems=refused.problems)
        term.store.load(key)
        term.store.write_context(key)
        if term.announced.get(key) != refused.text and not _shown(obj, refused):
            self.recorder.record(obj, Notice(WARNING, "InvalidSpec", refused.text))
        term.announced[key] = refused.text
        return None

    def _add_finalizer(self, key: str, obj: Object) -> Object:
        updated = copy.deepcopy(obj)
        updated["metadata"]["finalizers"] = [*(obj["metadata"].get("finalizers") or []), FINALIZER]
        self.fence()
        written = self._replace(key, updated)
        with self._cache_lock:
            if key in self.cache:
                self.cache[key] = written
        return written

    def _replace(self, key: str, obj: Object) -> Object:
        try:
            return self.api.replace(obj)
        except ApiException as exc:
            if exc.status == 409:
                raise StateConflict(f"ModelRollout {key}: {api_reason(exc)}") from None
            if exc.status == 404:
                raise RolloutGone(f"ModelRollout {key} is gone") from None
            raise

    def _finalize(self, term: _Term, key: str, obj: Object) -> float | None:
        """Deleted: traffic stays where it is, and an Event says where that is."""
        finalizers = obj["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            self._forget(term, key)
            return None
        state = term.reconciler.state(key)
        if state is None:
            known = term.store.known(key)
            state = known[2] if known is not None else None
        if state is None:
            try:
                term.store.load(key)
                known = term.store.known(key)
                state = known[2] if known is not None else None
            except StateError:
                state = None
        if state is None or state.started_at is None:
            message = "deleted before it started: no traffic was moved"
        else:
            message = (
                f"deleted while {state.phase.value} at step {state.step + 1}: traffic is left "
                f"where it is, weights {state.desired} (baseline/candidate); move it yourself "
                "or create a ModelRollout to continue"
            )
        self.recorder.record(obj, Notice(NORMAL, "Deleted", message))
        updated = copy.deepcopy(obj)
        updated["metadata"]["finalizers"] = [f for f in finalizers if f != FINALIZER]
        self.fence()
        self._replace(key, updated)
        self._forget(term, key)
        return None


def _request_event(request: Request) -> Event:
    if request.action == "promote":
        return Promote(request.full, request.reason or "promoted by a person")
    if request.action == "abort":
        return Abort(request.reason or "aborted by a person")
    return Retry(request.reason or "retried by a person")


def _replaced(state: RolloutState, target: Target, same_target: bool) -> Notice:
    where = (
        f"{state.phase.value} at step {state.step + 1}, weights {state.desired}"
        if state.phase is Phase.PROGRESSING
        else state.phase.value
    )
    if same_target:
        what = "the policy changed"
    elif state.target.baseline != target.baseline:
        what = f"baseline {state.target.baseline} -> {target.baseline}"
    else:
        what = f"candidate {state.target.candidate} -> {target.candidate}"
    return Notice(
        NORMAL,
        "NewAnalysis",
        f"{what} ({where}): a new analysis of {target.candidate} starts from the baseline's "
        "weights",
    )


def _router_trouble(before: RolloutState | None, after: RolloutState) -> Notice | None:
    """A Warning when the router starts failing or fails for a new reason (a missing object,
    a backend gone, weights someone else changed); the RouterAvailable condition says the
    same while it lasts."""
    outage = after.router_outage
    previous = before.router_outage if before is not None else None
    if outage is None or (previous is not None and previous.reason == outage.reason):
        return None
    return Notice(WARNING, "RouterError", f"{outage.reason}; the rollout tries again")


def _shown(obj: Mapping[str, Any], refused: Refused) -> bool:
    """The status already shows these problems for this generation (announced before)."""
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "InvalidSpec":
            return bool(
                condition.get("status") == "True"
                and condition.get("message") == refused.text
                and condition.get("observedGeneration") == refused.generation
            )
    return False


def run_controller(controller: Controller, elector: LeaderElector | None) -> None:
    """Watch, and act while leading (always, without an elector), until `controller.stop()`."""
    controller.start_watching()
    while not controller.synced.wait(0.2):
        if controller.stopping.is_set():
            return
    if elector is None:
        controller.lead()
        controller.stopping.wait()
        controller.unlead()
        return
    elector.run(controller.stopping, controller.lead, controller.unlead)


__all__ = [
    "Controller",
    "ControllerSettings",
    "FencedRouter",
    "RouterPlace",
    "default_router",
    "default_source",
    "run_controller",
]
