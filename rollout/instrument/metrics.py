"""The Prometheus side of the metrics contract, and `/metrics` in the format the scraper asks for.

Prometheus sends `Accept: application/openmetrics-text...` when exemplar storage is on;
only the OpenMetrics encoding carries exemplars, so the encoder follows the header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

# The judge compares exact counts at bucket bounds, so it can show a P95 regression only as
# fine as the buckets around the P95 are: with 2.3% steps (1.2 ** (1/8), so 1.2 x a bound is
# the bound 8 steps up) from 60 ms to 197 ms, where P95s under the usual SLO (150 ms) and 1.2x
# them lie, it resolves the policy's +20% (about +26% is shown reliably); coarse steps
# elsewhere. 63 finite bounds: 66 series per version and pod with +Inf, _sum and _count
# (Prometheus' default has 14); a ladder around another SLO: `latency_buckets(slo)`.
LADDER_STEPS = 8  # bounds per +20% on the ladder
COARSE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def latency_buckets(slo_seconds: float = 0.15, steps: int = LADDER_STEPS) -> tuple[float, ...]:
    """The ladder from 0.4x to 1.3x the SLO (1.2 ** (k / steps) x the SLO, printed to 5 digits),
    and coarse bounds outside it. `steps` other than 8 is for benchmarks/bucket_density.py."""
    step = 1.2 ** (1 / steps)
    ladder = {float(f"{slo_seconds * step**k:.5g}") for k in range(-5 * steps, steps * 3 // 2 + 1)}
    outside = {b for b in COARSE_BUCKETS if not min(ladder) <= b <= max(ladder)}
    return tuple(sorted(ladder | outside))


LATENCY_BUCKETS = latency_buckets()
FEATURE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# The feature fetch's bounds, so the Deep dive compares the two stages bound for bound, and a
# few more: a larger model's inference may take seconds.
INFER_BUCKETS = (*FEATURE_BUCKETS, 2.5, 5.0, 10.0)


class ModelMetrics:
    """The contract's metrics for one model version, on one registry."""

    def __init__(self, registry: CollectorRegistry, model_name: str, model_version: str) -> None:
        self.registry = registry
        self._labels = {"model_name": model_name, "model_version": model_version}
        self.requests = Counter(
            "inference_requests",
            "Inference requests answered, by outcome (error: HTTP 5xx or an exception).",
            ["model_name", "model_version", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "inference_latency_seconds",
            "Inference request latency, from the first byte in to the last byte out.",
            ["model_name", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.feature_fetch = Histogram(
            "feature_fetch_seconds",
            "Time spent fetching features, by feature source.",
            ["source"],
            buckets=FEATURE_BUCKETS,
            registry=registry,
        )
        self.infer = Histogram(
            "model_infer_seconds",
            "Time spent in the model's inference (the model.infer stage).",
            ["model_name", "model_version"],
            buckets=INFER_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "in_flight_requests", "Inference requests being served now.", registry=registry
        )
        # Both outcomes exist from the start, so a rate over them is 0 rather than absent.
        for status in ("ok", "error"):
            self.requests.labels(**self._labels, status=status)
        self.latency.labels(**self._labels)
        self.infer.labels(**self._labels)

    def observe_infer(self, seconds: float) -> None:
        """One inference, failed or not: the model's time is spent either way."""
        self.infer.labels(**self._labels).observe(seconds)

    def observe_request(self, latency_seconds: float, failed: bool, trace_id: str | None) -> None:
        """One finished request; `trace_id` only when its trace was kept (see sampling.py)."""
        exemplar = {"trace_id": trace_id} if trace_id else None
        status = "error" if failed else "ok"
        self.requests.labels(**self._labels, status=status).inc(exemplar=exemplar)
        self.latency.labels(**self._labels).observe(latency_seconds, exemplar=exemplar)


def metrics_endpoint(
    registry: CollectorRegistry,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving `registry` in the encoding the `Accept` header selects."""

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    return metrics
