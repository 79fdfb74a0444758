"""`MetricsSource` on a real Prometheus (or VictoriaMetrics), over one shared httpx client.

Every query of a look over (start, end] is evaluated at `time=end`, so analysing a
past window gives the answer it gave at the time (later samples are not read).
Failures (unreachable, timeout, HTTP 4xx/5xx, invalid JSON, status != success, a
result that is not a matrix) raise `MetricsSourceError` after a few retries of the
transient ones (`prom_http.PrometheusClient`); "no data" is not a failure: the field is
None and `Observation.problems` says which query came back empty, NaN or +Inf for which
version. No message, log line or repr carries a secret.

Batched. `observe_many(targets, start, end)` sends two queries whatever the number of
targets (rollouts) on this Prometheus: the samples of the requests counter and of the
histogram's `_bucket` series of every target's model and versions, one selector for both
(`queries.batch_queries`), split by signal and (model, version) in Python, and which of those
series still exist (`queries.live_query`). Looks that do not chain to their target's last one
(first looks) read the staleness period's samples instead, one more query per `COLD_BATCH`
such targets; see `last_samples.py`. So a tick is at most three queries up to that many new
rollouts. Custom metrics stay one query per version per target. `SourceRegistry` hands out one
source per (url, credentials, metric names, custom metrics) and one client (one connection
pool) per (url, credentials).

Exact counts. The requests counter (every status) and the histogram's `_bucket`
series are fetched raw, as range vectors reaching back `end - start` plus
`LOOKBACK_SECONDS` (Prometheus' 5-minute staleness period) from `end`, so every
series that was being scraped holds its last sample at or before `start`. Each
series' rise over the look is `counters.exact_increase`: the difference between its
last sample at or before `end` and its last at or before `start`, a counter reset
adding the new value, a series that appears inside the look counting from 0 (a new
pod's counters start at 0; a process that had served requests before Prometheus
first scraped it would have that history counted once, in that look). The
rises are summed per version (and per `le`); errors are the series whose status
label is the policy's error status, and a version with request series but no
error-status series had 0 errors. No `increase()`: it extrapolates the rise to the
window's edges (x4/3 at a 15 s scrape and 60 s looks, x2 at 30 s), which inflates
counts and their variance and breaks the tests' error rate, and with one sample in
the window it has no answer. The counts are integers, the samples' own values; two
consecutive looks share their boundary sample, so they partition the requests: each
is counted once, in the look whose window holds the scrape that first saw it. A look
that holds no scrape counts 0 (not "no data": the version's series are there); a
version with no series in the whole range is "no series".
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from rollout.analysis.counters import InvalidSample, exact_increase
from rollout.analysis.last_samples import WARM_MARGIN_SECONDS, LastSamples
from rollout.analysis.observation import (
    Bucket,
    CustomValue,
    Exemplar,
    MetricsSourceError,
    Observation,
    QueryRecord,
    Target,
    VersionCounts,
    shared_bucket,
)
from rollout.analysis.prom_http import (
    PrometheusClient,
    Series,
    client_key,
    is_victoria_metrics,
)
from rollout.analysis.queries import (
    LOOKBACK_SECONDS,
    batch_queries,
    custom_query,
    exemplar_selector,
    live_query,
    signal_queries,
)
from rollout.spec import CustomMetric, MetricNames, PrometheusConfig

_Series = Series
__all__ = ["PrometheusSource", "SourceRegistry", "is_victoria_metrics", "shared_source"]
PerTarget = float | Mapping[Target, float]  # one value for every target, or one each
# Targets read with the staleness period's samples (a first look) share a query this many at
# a time: 21 samples a series at a 15 s scrape, so the answer for 1000 new rollouts is about
# 100 MB of JSON (once in a rollout's life; peak RSS at 1000 rollouts: controller_scale.md).
# Chained looks (one or two samples a series) are one query for all.
COLD_BATCH = 1000


class PrometheusSource:
    """Counts per version from Prometheus; see the module docstring for the guarantees.

    `client`: a shared `PrometheusClient` (the source then leaves closing it to its
    owner, e.g. `SourceRegistry`); otherwise the source builds its own from `config`,
    with `transport` replacing the network if given.
    """

    def __init__(
        self,
        config: PrometheusConfig,
        metrics: MetricNames | None = None,
        custom_metrics: tuple[CustomMetric, ...] = (),
        *,
        attempts: int = 3,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
        client: PrometheusClient | None = None,
    ) -> None:
        self._metrics = metrics or MetricNames()
        # which signal a series is, by its `__name__`: the combined and the live answers
        self._signal_of = {
            self._metrics.requests: "requests",
            f"{self._metrics.latency}_bucket": "latency",
        }
        self._custom = custom_metrics
        self._owns_client = client is None
        self._client = client or PrometheusClient(
            config, attempts=attempts, backoff=backoff, transport=transport
        )
        self.url = self._client.url
        self._last = LastSamples(staleness=LOOKBACK_SECONDS)

    def __repr__(self) -> str:
        return f"PrometheusSource(url={self.url!r})"

    def close(self) -> None:
        """Close the connections, unless the client is shared (its owner closes it)."""
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------------ observe

    def observe(
        self, target: Target, start: float, end: float, *, custom_window: float | None = None
    ) -> Observation:
        """Exact counts per version over (start, end], every query evaluated at `end`.

        `custom_window` is the `{window}` of the custom metrics' queries (default
        `end - start`); it never changes the counts.
        """
        return self.observe_many((target,), start, end, custom_window=custom_window)[target]

    def observe_many(
        self,
        targets: Iterable[Target],
        start: PerTarget,
        end: float,
        *,
        custom_window: PerTarget | None = None,
    ) -> dict[Target, Observation]:
        """`observe` for many targets with two queries in all (plus the custom metrics').

        Every query is evaluated at `end`; `start` (and `custom_window`) is one value for
        all or one per target, each target's counts over its own (start, end]. A failing
        query fails the whole batch (`MetricsSourceError`), as it would each target.
        """
        batch = tuple(dict.fromkeys(targets))
        if not batch:
            return {}
        starts = {t: _for(start, t) for t in batch}
        for first in starts.values():
            if not end > first:
                raise ValueError(f"the window must end after it starts (start={first}, end={end})")
        warm = {t: self._last.warm(t, starts[t]) for t in batch}
        observed: dict[Target, Observation] = {}
        cold = tuple(t for t in batch if not warm[t])
        groups = [cold[i : i + COLD_BATCH] for i in range(0, len(cold), COLD_BATCH)]
        groups.append(tuple(t for t in batch if warm[t]))
        with _collector_paused():
            for group in groups:
                if group:
                    observed.update(
                        self._observe_group(group, starts, end, custom_window, len(batch))
                    )
        self._last.expire(end)
        return observed

    def _observe_group(
        self,
        group: tuple[Target, ...],
        starts: Mapping[Target, float],
        end: float,
        custom_window: PerTarget | None,
        batched: int,
    ) -> dict[Target, Observation]:
        """One query for targets that are all cold (read the staleness period back), or two
        for targets that are all warm (their earlier samples kept)."""
        warm = self._last.warm(group[0], starts[group[0]])
        lookback = WARM_MARGIN_SECONDS if warm else LOOKBACK_SECONDS
        queries = batch_queries(self._metrics, group, end - min(starts[t] for t in group), lookback)
        by_model = len({t.model for t in group}) > 1
        with ThreadPoolExecutor(1, thread_name_prefix="live-series") as background:
            # Prometheus answers which series live while this thread parses the samples.
            asked = background.submit(self._live, group, end, by_model) if warm else None
            answer = self._client.matrix("requests and latency", queries.combined, end)
            grouped = self._split(answer, by_model)
            live = asked.result() if asked is not None else None
        observed: dict[Target, Observation] = {}
        for target in group:
            first = starts[target]
            window = end - first
            if custom_window is not None:
                window = _for(custom_window, target)
            mine = {
                signal: self._mine(target, signal, series_by_version, by_model, live, end)
                for signal, series_by_version in grouped.items()
            }
            observed[target] = self._observation(
                target, first, end, window, mine["requests"], mine["latency"], by_model, batched
            )
            if all(mine[signal][key] for signal in mine for key in mine[signal]):
                self._last.commit(target, end)
            else:  # a version without series: its next look reads the full range again
                self._last.forget(target)
        return observed

    def _split(
        self, series: list[_Series], by_model: bool
    ) -> dict[str, dict[tuple[str | None, str | None], list[_Series]]]:
        """The combined answer's series per signal (their `__name__`) and (model, version);
        the model is None when the batch has one model (the query already chose it)."""
        split: dict[str, dict[tuple[str | None, str | None], list[_Series]]] = {
            "requests": {},
            "latency": {},
        }
        model_label, version_label = self._metrics.model_label, self._metrics.version_label
        for labels, samples in series:
            signal = self._signal_of.get(labels.get("__name__", ""))
            if signal is not None:
                model = labels.get(model_label) if by_model else None
                key = (model, labels.get(version_label))
                split[signal].setdefault(key, []).append((labels, samples))
        return split

    def _live(
        self, group: tuple[Target, ...], end: float, by_model: bool
    ) -> set[tuple[str, str | None, str | None]]:
        """(signal, model, version) of the series Prometheus still holds at `end` (a sample
        within its staleness period). A chained look's own window may hold no sample of a
        series that is there (no scrape in it): its kept sample stands, and the look counts
        0. A version that is gone, or an answer that lost it, is "no series", as the full
        range would say."""
        promql = live_query(self._metrics, group)
        found: set[tuple[str, str | None, str | None]] = set()
        for labels, _ in self._client.vector("series", promql, end):
            signal = self._signal_of.get(labels.get("__name__", ""))
            if signal is not None:
                model = labels.get(self._metrics.model_label) if by_model else None
                found.add((signal, model, labels.get(self._metrics.version_label)))
        return found

    def _mine(
        self,
        target: Target,
        signal: str,
        grouped: Mapping[tuple[str | None, str | None], list[_Series]],
        by_model: bool,
        live: set[tuple[str, str | None, str | None]] | None,
        end: float,
    ) -> dict[tuple[str | None, str | None], list[_Series]]:
        """The target's own series per (model, version); on a chained look (`live` given)
        behind their kept samples, none for a version Prometheus no longer holds."""
        model = target.model if by_model else None
        mine: dict[tuple[str | None, str | None], list[_Series]] = {}
        for v in dict.fromkeys((target.baseline, target.candidate)):
            if live is not None and (signal, model, v) not in live:
                mine[(model, v)] = []
                continue
            fetched = grouped.get((model, v), [])
            mine[(model, v)] = self._last.merge(target, (signal, v), fetched, end, live is not None)
        return mine

    def _observation(
        self,
        target: Target,
        start: float,
        end: float,
        custom_window: float,
        request_series: Mapping[tuple[str | None, str | None], list[_Series]],
        bucket_series: Mapping[tuple[str | None, str | None], list[_Series]],
        by_model: bool,
        batched: int,
    ) -> Observation:
        # What the batch's queries mean for this target alone: the same series, so the
        # report names a query a reader can rerun for this rollout.
        queries = signal_queries(self._metrics, target, end - start)
        model = target.model if by_model else None
        records: list[QueryRecord] = []
        problems: list[str] = []
        versions = {"baseline": target.baseline, "candidate": target.candidate}
        batch_note = f"batched with {batched - 1} other targets" if batched > 1 else ""

        def mine(grouped: Mapping[tuple[str | None, str | None], list[_Series]]) -> int:
            return sum(len(grouped.get((model, v), [])) for v in dict.fromkeys(versions.values()))

        requests_by_role: dict[str, int | None] = {}
        errors_by_role: dict[str, int | None] = {}
        for role, version in versions.items():
            requests_by_role[role], errors_by_role[role] = self._requests(
                role, version, request_series.get((model, version), []), start, end, problems
            )
        records.append(
            QueryRecord(
                "requests",
                queries.requests,
                end,
                mine(request_series),
                _join(batch_note, _note("requests", problems)),
            )
        )
        buckets = {
            role: self._buckets(
                role, version, bucket_series.get((model, version), []), start, end, problems
            )
            for role, version in versions.items()
        }
        records.append(
            QueryRecord(
                "latency",
                queries.latency,
                end,
                mine(bucket_series),
                _join(batch_note, _note("latency", problems)),
            )
        )
        custom = tuple(
            self._custom_value(m, target, custom_window, end, records, problems)
            for m in self._custom
        )
        return Observation(
            start=start,
            end=end,
            baseline=VersionCounts(
                requests_by_role["baseline"], errors_by_role["baseline"], buckets["baseline"]
            ),
            candidate=VersionCounts(
                requests_by_role["candidate"], errors_by_role["candidate"], buckets["candidate"]
            ),
            custom=custom,
            queries=tuple(records),
            problems=tuple(problems),
        )

    def _requests(
        self,
        role: str,
        version: str,
        series: list[_Series],
        start: float,
        end: float,
        problems: list[str],
    ) -> tuple[int | None, int | None]:
        """(requests, errors) of one version: every status, and the error status alone.

        A version with request series but none of the error status had 0 errors: that
        series often appears only with the first error."""
        mine = [s for s in series if s[0].get(self._metrics.version_label) == version]
        where = f"the {role} (version {version!r})"
        if not mine:
            problems.append(f"requests: no series for {where}")
            return None, None
        requests = errors = 0
        for labels, samples in mine:
            try:
                rise = exact_increase(samples, start, end)
            except InvalidSample as bad:
                problems.append(f"requests: {bad.value} for {where} (a counter sample)")
                return None, None
            requests += rise
            if labels.get(self._metrics.status_label) == self._metrics.error_status:
                errors += rise
        return requests, errors

    def _buckets(
        self,
        role: str,
        version: str,
        series: list[_Series],
        start: float,
        end: float,
        problems: list[str],
    ) -> tuple[Bucket, ...] | None:
        """Cumulative bucket counts of one version: each `_bucket` series' exact rise,
        summed per `le` over pods, instances and any other label."""
        per_le: dict[float, int] = {}
        where = f"the {role} (version {version!r})"
        for labels, samples in series:
            if labels.get(self._metrics.version_label) != version:
                continue
            try:
                le = float(labels["le"])
            except (KeyError, ValueError):
                raise MetricsSourceError(
                    f"Prometheus at {self.url}: latency series without a numeric 'le' label"
                ) from None
            try:
                per_le[le] = per_le.get(le, 0) + exact_increase(samples, start, end)
            except InvalidSample as bad:
                problems.append(f"latency: {bad.value} for {where} (a bucket counter sample)")
                return None
        if not per_le:
            problems.append(f"latency: no histogram series for {where}")
            return None
        if max(per_le) != math.inf:
            problems.append(f'latency: no le="+Inf" bucket for {where}')
            return None
        buckets: list[Bucket] = []
        highest = 0
        for le in sorted(per_le):
            # Per series the rises are cumulative in `le`; only pods with different bucket
            # layouts (a bound some pods lack) can break the order: the running max keeps it.
            highest = max(highest, per_le[le])
            buckets.append(shared_bucket(le, highest))
        return tuple(buckets)

    def _custom_value(
        self,
        metric: CustomMetric,
        target: Target,
        window: float,
        end: float,
        records: list[QueryRecord],
        problems: list[str],
    ) -> CustomValue:
        values: dict[str, float | None] = {}
        signal = f"custom:{metric.name}"
        for role, version in (("baseline", target.baseline), ("candidate", target.candidate)):
            promql = custom_query(metric, self._metrics, target.model, version, window)
            rows = self._client.vector(signal, promql, end)
            where = f"the {role} (version {version!r})"
            value: float | None = None
            if not rows:
                problems.append(f"{signal}: empty result for {where}")
            elif len(rows) > 1:
                problems.append(
                    f"{signal}: {len(rows)} series for {where}; aggregate the query to one, "
                    "e.g. with sum(...)"
                )
            elif not math.isfinite(rows[0][1]):
                problems.append(f"{signal}: {rows[0][1]} for {where}")
            else:
                value = rows[0][1]
            values[role] = value
            records.append(QueryRecord(signal, promql, end, len(rows), _note(signal, problems)))
        return CustomValue(metric.name, values["baseline"], values["candidate"])

    # ------------------------------------------------------------------ exemplars

    def exemplars(
        self,
        target: Target,
        version: str,
        start: float,
        end: float,
        *,
        min_latency: float | None = None,
        errors_only: bool = False,
    ) -> tuple[Exemplar, ...]:
        """Exemplars of a version in [start, end] that carry a `trace_id` label.

        Latency exemplars come from the histogram's `_bucket` series; `errors_only` reads
        the failed requests' counter instead and takes each trace's latency from the
        histogram when that has the same trace (NaN otherwise).
        """
        latency = self._exemplars(
            exemplar_selector(self._metrics, target.model, version, errors_only=False),
            version,
            start,
            end,
        )
        if errors_only:
            seconds = {e.trace_id: e.value for e in latency}
            failed = self._exemplars(
                exemplar_selector(self._metrics, target.model, version, errors_only=True),
                version,
                start,
                end,
            )
            chosen = [
                Exemplar(
                    e.trace_id, version, seconds.get(e.trace_id, math.nan), e.timestamp, e.labels
                )
                for e in failed
            ]
        else:
            chosen = list(latency)
        if min_latency is not None:
            chosen = [e for e in chosen if e.value >= min_latency]
        return tuple(chosen)

    def _exemplars(self, selector: str, version: str, start: float, end: float) -> list[Exemplar]:
        data = self._client.exemplars(selector, start, end)
        if not data and self._client.keeps_no_exemplars():
            raise MetricsSourceError(
                f"{self.url}: no exemplars from this backend (VictoriaMetrics keeps none; "
                "its /api/v1/query_exemplars always answers empty)"
            )
        found: list[Exemplar] = []
        try:
            for series in data:
                for item in series["exemplars"]:
                    labels = dict(item.get("labels", {}))
                    trace_id = labels.get("trace_id")
                    if not trace_id:
                        continue
                    found.append(
                        Exemplar(
                            trace_id=str(trace_id),
                            version=version,
                            value=float(item["value"]),
                            timestamp=float(item["timestamp"]),
                            labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
                        )
                    )
        except (KeyError, TypeError, ValueError):
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered the exemplars query with an invalid shape"
            ) from None
        return found


def _note(signal: str, problems: Iterable[str]) -> str:
    return "; ".join(p for p in problems if p.startswith(f"{signal}:"))


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


_PAUSED: list[bool] = []  # one entry per batch being counted: whether to resume after
_PAUSED_LOCK = threading.Lock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is read and counted. An answer for
    many rollouts is hundreds of thousands of small acyclic objects (freed by reference
    counting alone); meanwhile the collector would scan the whole heap again and again:
    a 1000-rollout look took 2.6-16 s with it, see benchmarks/results/controller_scale.md."""
    with _PAUSED_LOCK:
        _PAUSED.append(gc.isenabled() if not _PAUSED else _PAUSED[0])
        gc.disable()
    try:
        yield
    finally:
        with _PAUSED_LOCK:
            resume = _PAUSED.pop()
            if not _PAUSED and resume:
                gc.enable()


def _for(value: PerTarget, target: Target) -> float:
    return value if isinstance(value, int | float) else value[target]


class SourceRegistry:
    """Shared sources for one process: one `PrometheusClient` (one connection pool) per
    (url, credentials), one `PrometheusSource` per client, metric names and custom
    metrics. Thread-safe. Sources it hands out ignore `close()`; `close()` here closes
    every client."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._attempts = attempts
        self._backoff = backoff
        self._transport = transport
        self._lock = threading.Lock()
        self._clients: dict[tuple[object, ...], PrometheusClient] = {}
        self._sources: dict[tuple[object, ...], PrometheusSource] = {}

    def source(
        self,
        config: PrometheusConfig,
        metrics: MetricNames | None = None,
        custom_metrics: Sequence[CustomMetric] = (),
    ) -> PrometheusSource:
        metrics = metrics or MetricNames()
        custom = tuple(custom_metrics)
        key = client_key(config)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = PrometheusClient(
                    config,
                    attempts=self._attempts,
                    backoff=self._backoff,
                    transport=self._transport,
                )
                self._clients[key] = client
            source_key = (
                key,
                metrics.model_dump_json(),
                tuple(m.model_dump_json() for m in custom),
            )
            source = self._sources.get(source_key)
            if source is None:
                source = PrometheusSource(config, metrics, custom, client=client)
                self._sources[source_key] = source
            return source

    def clients(self) -> int:
        """How many connection pools are open."""
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            self._sources.clear()


_PROCESS = SourceRegistry()


def shared_source(
    config: PrometheusConfig,
    metrics: MetricNames | None = None,
    custom_metrics: Sequence[CustomMetric] = (),
) -> PrometheusSource:
    """The process' shared source for this Prometheus, credentials and metric names."""
    return _PROCESS.source(config, metrics, custom_metrics)
