"""Metrics of N models, two versions each, for Prometheus to scrape (controller_scale.py).

    .venv/bin/python benchmarks/scale_exporter.py --models N --port P [--rate R] [--seed S]

Serves `/metrics` on 127.0.0.1 in the metrics contract's names: per model and version,
`inference_requests_total{status="ok"|"error"}` and the kit's `inference_latency_seconds`
histogram (63 bounds + Inf, `_sum`, `_count`). The counters advance with the wall clock
between scrapes: per version requests ~ Poisson(rate x elapsed), 1% errors, latencies
lognormal (median 60 ms, sigma 0.5) over the buckets. Both versions are the same (A/A): the
benchmark measures the controller, not the judge. Runs in its own process, so its CPU is
not counted as the controller's.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rollout.instrument.metrics import LATENCY_BUCKETS  # noqa: E402

VERSIONS = ("1.0.0", "1.1.0")
ERROR_RATE = 0.01
MEDIAN_SECONDS, SIGMA = 0.06, 0.5


def model_name(index: int) -> str:
    return f"model-{index:04d}"


class Exposition:
    """Cumulative counters of every series and their text format."""

    def __init__(self, models: int, rate: float, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._rate = rate
        bounds = np.array([*LATENCY_BUCKETS, math.inf])
        cdf = stats.lognorm.cdf(bounds, SIGMA, scale=MEDIAN_SECONDS)
        self._cells = np.diff(np.concatenate([[0.0], cdf]))  # P(latency in each bucket)
        self._cells /= self._cells.sum()
        pairs = models * len(VERSIONS)
        self._ok = np.zeros(pairs, dtype=np.int64)
        self._errors = np.zeros(pairs, dtype=np.int64)
        self._cumulative = np.zeros((pairs, len(bounds)), dtype=np.int64)
        self._seconds = np.zeros(pairs)
        self._prefixes = self._names(models, bounds)
        self._last = time.time()
        self._lock = threading.Lock()

    @staticmethod
    def _names(models: int, bounds: np.ndarray) -> list[list[str]]:
        les = ["+Inf" if math.isinf(b) else repr(float(b)) for b in bounds]
        rows = []
        for m in range(models):
            for version in VERSIONS:
                labels = f'model_name="{model_name(m)}",model_version="{version}"'
                rows.append(
                    [
                        f'inference_requests_total{{{labels},status="ok"}} ',
                        f'inference_requests_total{{{labels},status="error"}} ',
                        *(f'inference_latency_seconds_bucket{{{labels},le="{le}"}} ' for le in les),
                        f"inference_latency_seconds_sum{{{labels}}} ",
                        f"inference_latency_seconds_count{{{labels}}} ",
                    ]
                )
        return rows

    def _advance(self) -> None:
        now = time.time()
        elapsed, self._last = now - self._last, now
        served = self._rng.poisson(self._rate * elapsed, size=len(self._ok))
        errors = self._rng.binomial(served, ERROR_RATE)
        cells = self._rng.multinomial(served, self._cells)
        self._ok += served - errors
        self._errors += errors
        self._cumulative += np.cumsum(cells, axis=1)
        self._seconds += served * MEDIAN_SECONDS

    def text(self) -> bytes:
        with self._lock:
            self._advance()
            values = np.column_stack(
                [self._ok, self._errors, self._cumulative, self._seconds, self._ok + self._errors]
            ).tolist()
        lines = [
            prefix + (f"{value:.3f}" if isinstance(value, float) else str(value))
            for prefixes, row in zip(self._prefixes, values, strict=True)
            for prefix, value in zip(prefixes, row, strict=True)
        ]
        return ("\n".join(lines) + "\n").encode()


def serve(exposition: Exposition, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition.text()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per version")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    serve(Exposition(args.models, args.rate, args.seed), args.port)


if __name__ == "__main__":
    main()
