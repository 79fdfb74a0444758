"""The controller's Prometheus metrics, fed by the reconciler's outcomes (an observer).

Labels follow the metrics contract (`model_name`, `model_version`) so the Grafana dashboards
in manifests/grafana read them, plus `namespace` and `rollout`:
- `rollout_phase{..., phase}`: 1 for the rollout's phase, 0 for the others
- `rollout_weight{..., model_version}`: the percent of traffic the router confirmed per version
- `rollout_decisions_total{..., model_version, decision}`: step, promoted, rolled_back, paused,
  aborted (the candidate's version)
- `rollout_analysis_seconds`: the wall time of each tick that read and judged a look
- `rollout_source_errors_total`: failed reads of the metrics source
- `rollout_e_value{..., metric}`: each test's e-value at the latest look (its evidence
  against "no regression"; the rollout rolls back when one reaches 1/alpha)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from rollout.engine import Looked, SourceFailed
from rollout.notify.notices import namespace_of, notice_kind
from rollout.reconcile import Advanced, Outcome, Rollout
from rollout.spec import NoticeKind
from rollout.state import Phase, RolloutState

BASE = ("namespace", "rollout", "model_name")
ANALYSIS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RolloutMetrics:
    """An observer keeping the metrics of every rollout it sees in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.phase = Gauge(
            "rollout_phase", "1 for the rollout's phase", [*BASE, "phase"], registry=r
        )
        self.weight = Gauge(
            "rollout_weight",
            "Percent of traffic per version, as the router confirmed it",
            [*BASE, "model_version"],
            registry=r,
        )
        self.decisions = Counter(
            "rollout_decisions",
            "Steps taken and decisions made, per candidate version",
            [*BASE, "model_version", "decision"],
            registry=r,
        )
        self.analysis = Histogram(
            "rollout_analysis_seconds",
            "Wall time of a tick that read and judged a look (queries and judge)",
            BASE,
            buckets=ANALYSIS_BUCKETS,
            registry=r,
        )
        self.source_errors = Counter(
            "rollout_source_errors", "Failed reads of the metrics source", BASE, registry=r
        )
        self.e_value = Gauge(
            "rollout_e_value",
            "Each test's e-value at the latest look",
            [*BASE, "metric"],
            registry=r,
        )
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        base = (namespace_of(rollout), rollout.name, rollout.target.model)
        with self._lock:
            if rollout.key not in self._seen:
                self._start(rollout, base)
            looked = False
            for happening in outcome.happened:
                if not isinstance(happening, Advanced):
                    continue
                looked = looked or isinstance(happening.event, Looked)
                if isinstance(happening.event, SourceFailed):
                    self.source_errors.labels(*base).inc()
                kind = notice_kind(happening.previous, happening.state)
                if kind is not None:
                    self.decisions.labels(*base, rollout.target.candidate, kind.value).inc()
                self._record(rollout, base, happening.state)
            self._record(rollout, base, outcome.state)
            if looked:
                self.analysis.labels(*base).observe(seconds)

    def _start(self, rollout: Rollout, base: tuple[str, str, str]) -> None:
        """Every series at once, at zero: a dashboard's `changes()` sees the first step."""
        self._seen.add(rollout.key)
        for kind in NoticeKind:
            self.decisions.labels(*base, rollout.target.candidate, kind.value)
        self.source_errors.labels(*base)

    def _record(self, rollout: Rollout, base: tuple[str, str, str], state: RolloutState) -> None:
        for phase in Phase:
            self.phase.labels(*base, phase.value).set(1.0 if phase is state.phase else 0.0)
        if state.confirmed:
            target = rollout.target
            self.weight.labels(*base, target.baseline).set(state.desired.baseline)
            self.weight.labels(*base, target.candidate).set(state.desired.candidate)
        judgement = state.judgement
        for comparison in judgement.comparisons if judgement is not None else ():
            value = comparison.e_value
            if value is not None and not math.isnan(value):
                self.e_value.labels(*base, comparison.metric).set(value)

    def close(self) -> None:
        return


@dataclass
class MetricsServer:
    """`/metrics` of a registry over HTTP, on its own thread."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def serve_metrics(
    registry: CollectorRegistry, port: int, address: str = "127.0.0.1"
) -> MetricsServer:
    """Serve `registry` on http://address:port/metrics (port 0: any free one); OSError when
    the port is taken."""
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsServer(server, thread)
