"""What the sequential judge remembers between looks: totals and test statistics, not looks.

`accumulate(analysis, observation, policy)` folds one look in; its cost does not grow with the
number of looks (the judge at look 120 costs what it costs at look 5), and it is small enough
to live in a rollout's state. The past is never recomputed:

- the bucket layout is fixed at the first look with a usable histogram for both versions; a
  later look that lacks one of those bounds adds no latency counts and is NO_DATA for latency
  (its requests and errors still count);
- every test's statistic is updated with the new look only, and its running maximum kept, so
  a later look can never turn an earlier look's verdict into a FAIL "in the past".

Pure: values in, values out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from rollout.analysis import sequential as seq
from rollout.analysis.observation import Bucket, Observation, VersionCounts
from rollout.analysis.sequential import Window
from rollout.spec import Direction, Policy

Floats = tuple[float, ...]


@dataclass(frozen=True)
class Totals:
    """One version over every look so far."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: Floats = ()  # cumulative counts per bound of the fixed layout (latency looks only)


@dataclass(frozen=True)
class CustomTally:
    """A custom-metric rule's sign test: intervals where the candidate was worse, of valid."""

    name: str  # the test's name, e.g. "custom:approval-rate:max_value"
    worse: float = 0.0
    valid: float = 0.0
    baseline_sum: float = 0.0
    baseline_n: float = 0.0
    candidate_sum: float = 0.0
    candidate_n: float = 0.0
    latest_valid: bool = False


@dataclass(frozen=True)
class Analysis:
    looks: int = 0
    les: Floats = ()  # the fixed bucket layout (ascending, last +Inf); () until known
    baseline: Totals = Totals()
    candidate: Totals = Totals()
    latency_looks: int = 0  # looks whose histograms were counted
    latency_missing: str = ""  # why the latest look's histograms were not usable
    errors_up: tuple[Floats, ...] = ()  # log-LR per (null ratio in RHO_GRID, alternative)
    errors_down: tuple[Floats, ...] = ()
    latency_llr: tuple[Floats, ...] = ()  # matched tails: log-LR per bucket and alternative
    window: Window = field(default_factory=Window)  # where the baseline's quantile lies
    # The quantile ratio's confidence sequence, intersected over the looks (valid at all at once)
    ratio_low: float = 0.0
    ratio_high: float = math.inf
    peaks: tuple[tuple[str, float], ...] = ()  # each test's largest log e-value so far
    custom: tuple[CustomTally, ...] = ()

    def peak(self, name: str) -> float:
        return next((value for key, value in self.peaks if key == name), 0.0)


def accumulate(analysis: Analysis | None, observation: Observation, policy: Policy) -> Analysis:
    """`analysis` with one more look folded in."""
    a = analysis or Analysis()
    base, cand = observation.baseline, observation.candidate
    les = a.les or _first_layout(base, cand)
    base_counts = _on_layout(base.buckets, les)
    cand_counts = _on_layout(cand.buckets, les)
    latency_ok = base_counts is not None and cand_counts is not None
    missing = "" if latency_ok else _layout_problem(base, cand, les)
    peaks = dict(a.peaks)

    n_b, n_c = _count(base.requests), _count(cand.requests)
    e_b = min(_count(base.errors), n_b)
    e_c = min(_count(cand.errors), n_c)
    up, down = seq.rate_ratio_llr(
        _grid(a.errors_up), _grid(a.errors_down), e_c, e_b, n_c, n_b, seq.rho_grid(policy)
    )
    log_e = seq.mixture_log_e(up[seq.rho_index(policy)])
    peaks["error_rate"] = max(peaks.get("error_rate", 0.0), log_e)

    base_totals = _add(a.baseline, n_b, e_b, base_counts)
    cand_totals = _add(a.candidate, n_c, e_c, cand_counts)
    window, latency_llr = a.window, a.latency_llr
    ratio_low, ratio_high = a.ratio_low, a.ratio_high
    if latency_ok:
        assert base_counts is not None and cand_counts is not None
        q, r = policy.latency.quantile, policy.latency.max_regression
        les_array = np.asarray(les)
        look_llr = seq.matched_tail_llr(seq.bucket_pairs(r, les_array), base_counts, cand_counts)
        summed = np.asarray(latency_llr) + look_llr if latency_llr else look_llr
        latency_llr = _tuple2(summed)
        window = seq.quantile_window(
            q, r, les_array, np.asarray(base_totals.buckets), window_alpha(policy)
        )
        log_e = seq.window_log_e(summed, window, les_array)
        peaks["latency_p95"] = max(peaks.get("latency_p95", 0.0), log_e)
        low_c, up_c = seq.quantile_bounds(
            q, les_array, np.asarray(cand_totals.buckets), window_alpha(policy)
        )
        ratio_low = max(ratio_low, low_c / window.upper if low_c > 0 and window.upper > 0 else 0.0)
        if window.lower > 0 and math.isfinite(up_c):
            ratio_high = min(ratio_high, up_c / window.lower)

    if policy.slo.max_error_rate is not None:
        bound = policy.slo.max_error_rate
        guard = seq.bernoulli_log_e(cand_totals.errors, cand_totals.requests, bound)
        peaks["slo:error_rate"] = max(peaks.get("slo:error_rate", 0.0), float(guard))
    if policy.slo.max_latency_seconds is not None and latency_ok and les:
        above = seq.exceeding(policy.slo.max_latency_seconds, np.asarray(les), cand_totals.buckets)
        guard = seq.bernoulli_log_e(above, cand_totals.buckets[-1], 1.0 - policy.latency.quantile)
        peaks["slo:latency_p95"] = max(peaks.get("slo:latency_p95", 0.0), float(guard))
    custom = _custom(a.custom, observation, policy, peaks)
    return replace(
        a,
        looks=a.looks + 1,
        les=les,
        baseline=base_totals,
        candidate=cand_totals,
        latency_looks=a.latency_looks + int(latency_ok),
        latency_missing=missing,
        errors_up=_tuple2(up),
        errors_down=_tuple2(down),
        latency_llr=latency_llr,
        window=window,
        ratio_low=ratio_low,
        ratio_high=ratio_high,
        peaks=tuple(sorted(peaks.items())),
        custom=custom,
    )


# The latency test's alpha: each of the four one-sided statements about where a quantile lies
# (baseline and candidate, above and below) gets WINDOW_SHARE of it, the matched tails the rest.
WINDOW_SHARE = 1.0 / 8.0
TAILS_SHARE = 1.0 - 4.0 * WINDOW_SHARE


def window_alpha(policy: Policy) -> float:
    return policy.alpha / len(active_tests(policy)) * WINDOW_SHARE


def active_tests(policy: Policy) -> list[str]:
    names = ["error_rate", "latency_p95"]
    if policy.slo.max_error_rate is not None:
        names.append("slo:error_rate")
    if policy.slo.max_latency_seconds is not None:
        names.append("slo:latency_p95")
    for metric in policy.custom_metrics:
        if metric.max_relative_change is not None:
            names.append(f"custom:{metric.name}")
        if metric.max_value is not None:
            names.append(f"custom:{metric.name}:max_value")
        if metric.min_value is not None:
            names.append(f"custom:{metric.name}:min_value")
    return names


# ---------------------------------------------------------------------------- helpers


def _count(value: int | None) -> float:
    return max(float(value), 0.0) if value is not None else 0.0


def _grid(rows: tuple[Floats, ...]) -> np.ndarray | None:
    return np.asarray(rows) if rows else None


def _tuple2(matrix: np.ndarray) -> tuple[Floats, ...]:
    return tuple(map(tuple, matrix.tolist()))


def _usable(buckets: tuple[Bucket, ...] | None) -> bool:
    if not buckets or len(buckets) < 2 or not math.isinf(buckets[-1].le):
        return False
    return all(math.isfinite(b.le) for b in buckets[:-1]) and all(b.count >= 0 for b in buckets)


def _first_layout(base: VersionCounts, cand: VersionCounts) -> Floats:
    """The bounds both versions share at the first look where both have a histogram."""
    if not (_usable(base.buckets) and _usable(cand.buckets)):
        return ()
    assert base.buckets is not None and cand.buckets is not None
    shared = {b.le for b in base.buckets} & {b.le for b in cand.buckets}
    bounds = tuple(sorted(shared))
    return bounds if len(bounds) >= 2 and math.isinf(bounds[-1]) else ()


def _on_layout(buckets: tuple[Bucket, ...] | None, les: Floats) -> np.ndarray | None:
    """Cumulative counts on the fixed bounds; None when the look lacks one of them."""
    if not les or not _usable(buckets):
        return None
    assert buckets is not None
    values = {b.le: b.count for b in buckets}
    try:
        counts = [values[le] for le in les]
    except KeyError:
        return None
    return np.maximum.accumulate(np.array(counts, dtype=np.float64))


def _layout_problem(base: VersionCounts, cand: VersionCounts, les: Floats) -> str:
    for role, counts in (("baseline", base), ("candidate", cand)):
        if not _usable(counts.buckets):
            return f"no usable latency histogram for the {role}"
        assert counts.buckets is not None
        lacking = sorted(set(les) - {b.le for b in counts.buckets})
        if lacking:
            shown = ", ".join(f"{le:g}" for le in lacking[:4])
            return (
                f"the {role}'s bucket layout changed (no le={shown}); the layout is fixed at "
                "the first look, so this look's latency cannot be compared"
            )
    return "the two versions share no bucket layout"


def _add(totals: Totals, requests: float, errors: float, buckets: np.ndarray | None) -> Totals:
    if buckets is None:
        merged = totals.buckets
    elif totals.buckets:
        merged = tuple(float(x + y) for x, y in zip(totals.buckets, buckets, strict=True))
    else:
        merged = tuple(float(v) for v in buckets)
    return Totals(totals.requests + requests, totals.errors + errors, merged)


def _custom(
    tallies: tuple[CustomTally, ...],
    observation: Observation,
    policy: Policy,
    peaks: dict[str, float],
) -> tuple[CustomTally, ...]:
    known = {t.name: t for t in tallies}
    out: list[CustomTally] = []
    for metric in policy.custom_metrics:
        found = next((c for c in observation.custom if c.name == metric.name), None)
        b = _finite(found.baseline if found else None)
        c = _finite(found.candidate if found else None)
        increase_bad = metric.direction is Direction.INCREASE_IS_BAD
        rules: list[tuple[str, bool, bool]] = []  # (test name, valid, worse)
        if metric.max_relative_change is not None:
            valid = b is not None and c is not None
            limit = (b or 0.0) + (1 if increase_bad else -1) * abs(b or 0.0) * (
                metric.max_relative_change
            )
            worse = valid and ((c or 0.0) > limit if increase_bad else (c or 0.0) < limit)
            rules.append((f"custom:{metric.name}", valid, worse))
        if metric.max_value is not None:
            rules.append(
                (f"custom:{metric.name}:max_value", c is not None, (c or 0.0) > metric.max_value)
            )
        if metric.min_value is not None:
            rules.append(
                (f"custom:{metric.name}:min_value", c is not None, (c or 0.0) < metric.min_value)
            )
        for name, valid, worse in rules:
            t = known.get(name, CustomTally(name))
            t = replace(
                t,
                worse=t.worse + float(valid and worse),
                valid=t.valid + float(valid),
                baseline_sum=t.baseline_sum + (b or 0.0),
                baseline_n=t.baseline_n + float(b is not None),
                candidate_sum=t.candidate_sum + (c or 0.0),
                candidate_n=t.candidate_n + float(c is not None),
                latest_valid=valid,
            )
            log_e = float(seq.bernoulli_log_e(t.worse, t.valid, 0.5))
            peaks[name] = max(peaks.get(name, 0.0), log_e)
            out.append(t)
    return tuple(out)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
