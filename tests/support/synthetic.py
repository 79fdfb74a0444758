"""Synthetic, messy model-server metrics as OpenMetrics text, with the exact truth beside them.

Two versions per model, several instances (pods) per version, one instance whose
counters reset half-way (a pod restart), optionally a pod that appears mid-way (its
counters start at 0) and one that vanishes, extra labels (route, instance, pod),
latency from a lognormal distribution (a `latency_scale` multiplies every quantile,
P95 included), an error fraction and a request rate per version. The histogram has the
kit's buckets (`rollout.instrument.metrics.LATENCY_BUCKETS`, dense around the SLO) unless
a model says otherwise (`COARSE_BUCKETS`: what servers with coarse buckets expose). Samples every
`step` seconds (per model, if it says so). `Truth` keeps every increment at the
sample that first shows it, so a test can say exactly what an exact count over any
(start, end] must be: the increments of the samples in (start, end].
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rollout.analysis.observation import Bucket, VersionCounts
from rollout.instrument.metrics import LATENCY_BUCKETS
from rollout.spec import MetricNames

# Finite bucket bounds in seconds (+Inf closes every histogram): the kit's, and a coarse
# layout (Prometheus-client-like steps, 100 ms -> 150 ms around a 100 ms P95).
KIT_BUCKETS: tuple[float, ...] = tuple(sorted(LATENCY_BUCKETS))
COARSE_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip


@dataclass(frozen=True)
class VersionProfile:
    """How one version behaves: traffic, errors and latency."""

    version: str
    rps: float = 40.0  # requests per second over all instances and routes
    error_rate: float = 0.005
    latency_median: float = 0.05  # seconds
    latency_sigma: float = 0.4  # lognormal shape
    latency_scale: float = 1.0  # multiplies every latency: P95 x latency_scale
    instances: int = 3
    reset_instance: int | None = 1  # this instance's counters restart half-way
    appearing_instance: int | None = None  # this pod's series start 2/3 in, from 0
    vanishing_instance: int | None = None  # this pod's series stop 1/3 in

    def quantile(self, q: float) -> float:
        """The true latency quantile in seconds."""
        from scipy.stats import norm

        z = float(norm.ppf(q))
        return self.latency_scale * self.latency_median * math.exp(self.latency_sigma * z)


@dataclass(frozen=True)
class SyntheticModel:
    model: str
    baseline: VersionProfile
    candidate: VersionProfile | None  # None: the candidate has no series at all
    seed: int = 0
    routes: tuple[str, ...] = ("/predict",)
    step: float | None = None  # seconds between samples; None: synthesize()'s step
    buckets: tuple[float, ...] = KIT_BUCKETS  # the histogram's finite bounds, ascending


@dataclass
class _Increments:
    """Per-step increments of one version, summed over instances and routes."""

    timestamps: np.ndarray  # this model's sample times, unix seconds
    events: dict[str, float]  # "reset", "appear", "vanish" -> the first sample it shows in
    requests: np.ndarray  # shape (steps,)
    errors: np.ndarray
    bounds: tuple[float, ...]  # the model's finite bucket bounds
    buckets: np.ndarray  # shape (steps, len(bounds) + 1), cumulative over `le`


@dataclass
class Truth:
    """Exact per-version counts behind the OpenMetrics text."""

    timestamps: np.ndarray  # sample times at synthesize()'s step, unix seconds
    versions: dict[tuple[str, str], _Increments] = field(default_factory=dict)

    def events(self, model: str, version: str) -> dict[str, float]:
        """When the version's reset, appearing and vanishing pods first show in the samples."""
        return self.versions[(model, version)].events

    def counts(self, model: str, version: str, start: float, end: float) -> VersionCounts:
        """The exact counts over (start, end]: the increments at samples in (start, end]."""
        inc = self.versions[(model, version)]
        mask = (inc.timestamps > start) & (inc.timestamps <= end)
        cumulative = inc.buckets[mask].sum(axis=0)
        bounds = (*inc.bounds, math.inf)
        return VersionCounts(
            requests=int(inc.requests[mask].sum()),
            errors=int(inc.errors[mask].sum()),
            buckets=tuple(
                Bucket(le=le, count=int(c)) for le, c in zip(bounds, cumulative, strict=True)
            ),
        )


@dataclass(frozen=True)
class Dataset:
    openmetrics: str
    truth: Truth
    start: float  # first sample
    end: float  # last sample


def _label_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}={_label_value(v)}" for k, v in pairs) + "}"


def _format(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _formatted(values: np.ndarray) -> list[str]:
    """`_format` of every value; whole numbers (counters, timestamps) at numpy's speed."""
    if np.all(np.mod(values, 1) == 0):
        result: list[str] = values.astype(np.int64).astype(str).tolist()
        return result
    return [_format(v) for v in values]


@dataclass
class _Series:
    name: str
    labels: tuple[tuple[str, str], ...]
    values: np.ndarray  # cumulative, as a counter reads
    timestamps: np.ndarray  # one per value


def _counter(increments: np.ndarray, base: float, reset_at: int | None) -> np.ndarray:
    """Cumulative values from per-step increments; the first sample is the `base` history.

    A reset at step r: the pod restarted, so the value there is only what came after."""
    values = base + np.cumsum(increments)
    if reset_at is not None:
        values[reset_at:] = np.cumsum(increments[reset_at:])
    return values


def _instance_series(
    model: SyntheticModel,
    profile: VersionProfile,
    names: MetricNames,
    timestamps: np.ndarray,
    rng: np.random.Generator,
    totals: _Increments,
) -> Iterator[_Series]:
    bounds = np.array(model.buckets)
    steps = len(timestamps)
    step = float(timestamps[1] - timestamps[0])
    per_stream = profile.rps * step / (profile.instances * len(model.routes))
    for index in range(profile.instances):
        reset_at = steps // 2 if profile.reset_instance == index else None
        appear = 2 * steps // 3 if profile.appearing_instance == index else 0
        vanish = steps // 3 if profile.vanishing_instance == index else steps
        for event, at in (("reset", reset_at), ("appear", appear or None)):
            if at is not None:
                totals.events[event] = float(timestamps[at])
        if vanish < steps:
            totals.events["vanish"] = float(timestamps[vanish])  # the first sample without it
        pod = f"{model.model}-{profile.version}-{index}"
        for route in model.routes:
            # Step 0 is the sample every window starts from: no increments before it count.
            n = rng.poisson(per_stream, size=steps)
            n[0] = 0
            n[:appear] = 0  # not there yet: its first sample holds what it served since it started
            n[vanish:] = 0  # gone: no samples, no requests
            errors = rng.binomial(n, profile.error_rate)
            latencies = profile.latency_scale * rng.lognormal(
                math.log(profile.latency_median), profile.latency_sigma, size=int(n.sum())
            )
            step_of = np.repeat(np.arange(steps), n)
            slot = np.searchsorted(bounds, latencies, side="left")  # le: latency <= bound
            per_bucket = np.bincount(
                step_of * (len(bounds) + 1) + slot, minlength=steps * (len(bounds) + 1)
            ).reshape(steps, len(bounds) + 1)
            cumulative = np.cumsum(per_bucket, axis=1)
            seconds = np.bincount(step_of, weights=latencies, minlength=steps)
            totals.requests += n
            totals.errors += errors
            totals.buckets += cumulative

            common = (
                (names.model_label, model.model),
                (names.version_label, profile.version),
                ("route", route),
                ("instance", f"10.0.{index}.1:8000"),
                ("pod", pod),
            )
            base = float(rng.integers(1000, 5000))  # counters have history before the data
            if appear:
                base = 0.0  # a new pod's counters start at 0
            kept = slice(appear, vanish)

            counters: list[tuple[str, tuple[tuple[str, str], ...], np.ndarray]] = [
                (
                    names.requests,
                    (*common, (names.status_label, status)),
                    _counter(count, base, reset_at),
                )
                for status, count in (("ok", n - errors), (names.error_status, errors))
            ]
            counters += [
                (
                    f"{names.latency}_bucket",
                    (*common, ("le", le)),
                    _counter(cumulative[:, i], base * (i + 1), reset_at),
                )
                for i, le in enumerate((*(repr(b) for b in model.buckets), "+Inf"))
            ]
            counters += [
                (
                    f"{names.latency}_count",
                    common,
                    _counter(n, base * (len(bounds) + 1), reset_at),
                ),
                (f"{names.latency}_sum", common, _counter(seconds, base, reset_at)),
            ]
            for name, labels, values in counters:
                yield _Series(name, labels, values[kept], timestamps[kept])


def synthesize(
    models: Sequence[SyntheticModel],
    *,
    end: float,
    minutes: float,
    step: float = 15.0,
    names: MetricNames | None = None,
) -> Dataset:
    """OpenMetrics text for `models` over `minutes` ending at `end` (unix seconds)."""
    names = names or MetricNames()

    def sample_times(every: float) -> np.ndarray:
        steps = round(minutes * 60 / every) + 1
        return end - every * np.arange(steps - 1, -1, -1)

    timestamps = sample_times(step)
    truth = Truth(timestamps=timestamps)
    series: list[_Series] = []
    for model in models:
        rng = np.random.default_rng(model.seed)
        stamps = sample_times(model.step) if model.step is not None else timestamps
        for profile in (model.baseline, model.candidate):
            if profile is None:
                continue
            totals = _Increments(
                timestamps=stamps,
                events={},
                requests=np.zeros(len(stamps), dtype=np.int64),
                errors=np.zeros(len(stamps), dtype=np.int64),
                bounds=model.buckets,
                buckets=np.zeros((len(stamps), len(model.buckets) + 1), dtype=np.int64),
            )
            series.extend(_instance_series(model, profile, names, stamps, rng, totals))
            truth.versions[(model.model, profile.version)] = totals
    return Dataset(
        openmetrics=_render(series, names),
        truth=truth,
        start=float(timestamps[0]),
        end=float(timestamps[-1]),
    )


def _render(series: list[_Series], names: MetricNames) -> str:
    """OpenMetrics text: one family after the other, each series' samples in time order."""
    requests_family = names.requests.removesuffix("_total")
    families = (
        (requests_family, "counter", (names.requests,)),
        (
            names.latency,
            "histogram",
            tuple(f"{names.latency}{s}" for s in ("_bucket", "_count", "_sum")),
        ),
    )
    lines: list[str] = []
    for family, kind, members in families:
        lines.append(f"# TYPE {family} {kind}")
        for s in series:
            if s.name not in members:
                continue
            head = s.name + _labels(s.labels)
            lines.extend(
                f"{head} {v} {t}"
                for v, t in zip(_formatted(s.values), _formatted(s.timestamps), strict=True)
            )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
