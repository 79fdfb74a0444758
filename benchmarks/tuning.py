"""Tuning the peers to our false-rollback rate, and the numbers reported per rule.

A peer's setting is feasible when its false-rollback rate on separate A/A calibration draws (the
scenario's A/A twin, same rate and baseline) is at most ours on that twin's evaluation draws
(at least one rollback in the calibration set is always allowed: 1/N). Among the feasible
settings of the grid, the one with the shortest median time to rollback on the scenario itself is
kept: the best tuning a user could pick with hindsight, which favours the peers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.peers import NEVER, KayentaWindows, Summary, argo, flagger, kayenta
from benchmarks.simulate import FloatArray, IntArray, Scenario

Grid = Callable[[Summary, KayentaWindows, FloatArray, FloatArray, int], IntArray]


@dataclass(frozen=True)
class Rule:
    name: str
    a_name: str  # the first threshold: what it bounds
    b_name: str
    n_name: str  # the integer setting (failed checks, failure limit), "" if none
    a_grid: Callable[[Scenario], FloatArray]
    b_grid: Callable[[Scenario], FloatArray]
    n_grid: tuple[int, ...]
    run: Grid

    def describe(self, a: float, b: float, n: int) -> str:
        text = f"{self.a_name} {a:.4g}, {self.b_name} {b:.4g}"
        return f"{text}, {self.n_name} {n}" if self.n_name else text


def _p95(s: Scenario) -> float:
    return s.baseline.quantile(0.95)


PEERS: tuple[Rule, ...] = (
    Rule(
        "Flagger-style",
        "P95 max s",
        "error rate max",
        "threshold",
        lambda s: _p95(s) * np.linspace(1.0, 3.0, 41),
        lambda s: s.baseline_errors * np.linspace(1.0, 6.0, 51),
        (1, 2, 3, 5, 8),
        lambda su, _k, a, b, n: flagger(su, a, b, n),
    ),
    Rule(
        "Argo-style",
        "P95 ratio max",
        "error rate diff max",
        "failureLimit",
        lambda s: np.linspace(1.0, 3.0, 41),
        lambda s: s.baseline_errors * np.linspace(0.0, 5.0, 51),
        (0, 1, 2, 3, 5),
        lambda su, _k, a, b, n: argo(su, a, b, n),
    ),
    Rule(
        "Kayenta-style",
        "P95 meanRatio bound",
        "error meanRatio bound",
        "",
        lambda s: np.linspace(1.0, 2.0, 41),
        lambda s: np.linspace(1.0, 4.0, 61),
        (0,),
        lambda _su, k, a, b, _n: kayenta(k, a, b),
    ),
)


@dataclass(frozen=True)
class Setting:
    rule: Rule
    a: float
    b: float
    n: int
    calibration_rates: tuple[float, ...]  # its rollback rate on each set of calibration draws
    within: bool = True  # False: no setting of the grid met the allowed rates

    def describe(self) -> str:
        rates = ", ".join(f"{r:.1%}" for r in self.calibration_rates)
        flag = "" if self.within else ", NO grid setting within ours"
        return f"{self.rule.describe(self.a, self.b, self.n)} (calibration {rates}{flag})"


Calibration = tuple[Summary, KayentaWindows, float]  # draws, their windows, the allowed rate


def minutes(index: IntArray, interval: float) -> FloatArray:
    """Time to rollback in minutes; +inf where the rule never rolled back."""
    return np.where(index == NEVER, np.inf, (index + 1) * interval / 60.0)


def _quantile(times: FloatArray, q: float) -> FloatArray:
    # no interpolation: a quantile past the detected share stays +inf ("not reached")
    return np.quantile(times, q, axis=-1, method="inverted_cdf")


def tune(
    rule: Rule,
    twin: Scenario,
    calibrations: Sequence[Calibration],
    evaluation: tuple[Summary, KayentaWindows],
    interval: float,
) -> Setting:
    """The grid's setting with the shortest median time to rollback on `evaluation` among those
    whose rollback rate on every set of calibration draws is within its allowed rate."""
    a_grid, b_grid = rule.a_grid(twin), rule.b_grid(twin)
    best: tuple[tuple[float, float, float], Setting] | None = None
    loosest: Setting | None = None
    for n in rule.n_grid:
        rates = [
            (rule.run(summary, windows, a_grid, b_grid, n) != NEVER).mean(axis=-1)
            for summary, windows, _ in calibrations
        ]
        worst = max(float(r[-1, -1]) for r in rates)
        if loosest is None or worst < max(loosest.calibration_rates):
            loose = tuple(float(r[-1, -1]) for r in rates)
            loosest = Setting(rule, float(a_grid[-1]), float(b_grid[-1]), n, loose, False)
        feasible = np.logical_and.reduce(
            [r <= allowed for r, (_, _, allowed) in zip(rates, calibrations, strict=True)]
        )
        if not feasible.any():
            continue
        times = minutes(rule.run(*evaluation, a_grid, b_grid, n), interval)
        keys = (_quantile(times, 0.5), _quantile(times, 0.95), -np.isfinite(times).mean(axis=-1))
        order = np.lexsort(tuple(np.where(feasible, k, np.inf).ravel() for k in reversed(keys)))
        i, j = np.unravel_index(order[0], feasible.shape)
        key = (float(keys[0][i, j]), float(keys[1][i, j]), float(keys[2][i, j]))
        calibrated = tuple(float(r[i, j]) for r in rates)
        setting = Setting(rule, float(a_grid[i]), float(b_grid[j]), n, calibrated)
        if best is None or key < best[0]:
            best = (key, setting)
    if best is not None:
        return best[1]
    assert loosest is not None
    return loosest  # nothing in the grid met the allowed rates: the loosest, flagged


def apply(setting: Setting, summary: Summary, windows: KayentaWindows) -> IntArray:
    index = setting.rule.run(
        summary, windows, np.array([setting.a]), np.array([setting.b]), setting.n
    )
    return index[0, 0]


@dataclass(frozen=True)
class Outcome:
    rule: str
    rollback_rate: float
    median_minutes: float  # +inf: fewer than half rolled back
    p95_minutes: float
    median_bad: float  # candidate's bad requests served before the rollback (or all)
    setting: str = ""

    @staticmethod
    def of(
        rule: str, index: IntArray, bad: IntArray, interval: float, setting: str = ""
    ) -> Outcome:
        times = minutes(index, interval)
        served = np.cumsum(bad, axis=1)
        last = np.where(index == NEVER, bad.shape[1] - 1, index)
        bad_served = np.take_along_axis(served, last[:, None], axis=1)[:, 0]
        return Outcome(
            rule,
            float((index != NEVER).mean()),
            float(_quantile(times, 0.5)),
            float(_quantile(times, 0.95)),
            float(np.median(bad_served)),
            setting,
        )
