"""`instrument(app, ...)`: one call that makes a FastAPI model server follow the metrics contract.

An ASGI middleware of our own (rather than the FastAPI instrumentation) opens the HTTP
root span, because the sampling decision must be taken between the response and the
root span's end, and the exemplar written only after that decision.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TextIO

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollout.instrument.export import (
    KEPT_ATTRIBUTE,
    REASON_ATTRIBUTE,
    JsonLinesSpanExporter,
    TailSamplingProcessor,
)
from rollout.instrument.logs import log_request, request_id_from, request_logger
from rollout.instrument.metrics import ModelMetrics, metrics_endpoint
from rollout.instrument.sampling import TailSampler, TracingConfig

FEATURE_SPAN = "feature_store.get_features"
INFER_SPAN = "model.infer"
SERIALIZE_SPAN = "postprocess.serialize"
DEFAULT_EXCLUDED = frozenset({"/metrics", "/healthz"})

_W3C = TraceContextTextMapPropagator()
_request_id: ContextVar[str | None] = ContextVar("rollout_request_id", default=None)


@dataclass
class Instrumentation:
    """What `instrument` returns: span helpers for the app, and `shutdown` to flush spans."""

    model_name: str
    model_version: str
    service: str
    metrics: ModelMetrics
    tracer: trace.Tracer
    logger: logging.Logger
    sampler: TailSampler | None
    provider: TracerProvider | None
    excluded_paths: frozenset[str] = field(default=DEFAULT_EXCLUDED)

    def request_id(self) -> str | None:
        """The current request's ID (inside a request), else None."""
        return _request_id.get()

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[trace.Span]:
        """A child span of the current request, carrying model_name, model_version, request_id."""
        base: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "request_id": _request_id.get() or "",
        }
        with self.tracer.start_as_current_span(name, attributes={**base, **attributes}) as span:
            yield span

    @contextmanager
    def feature_fetch(self, source: str) -> Iterator[trace.Span]:
        """The `feature_store.get_features` span, timed into `feature_fetch_seconds{source}`."""
        started = time.perf_counter()
        try:
            with self.span(FEATURE_SPAN, **{"feature.source": source}) as span:
                yield span
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.feature_fetch.labels(source=source).observe(elapsed)

    @contextmanager
    def infer(self) -> Iterator[trace.Span]:
        """The `model.infer` span, timed into `model_infer_seconds{model_name, model_version}`."""
        started = time.perf_counter()
        try:
            with self.span(INFER_SPAN) as span:
                yield span
        finally:
            self.metrics.observe_infer(time.perf_counter() - started)

    def serialize(self) -> AbstractContextManager[trace.Span]:
        """The `postprocess.serialize` span (a context manager)."""
        return self.span(SERIALIZE_SPAN)

    def shutdown(self) -> None:
        """Flush and close the spans file; call once the server has stopped."""
        if self.provider is not None:
            self.provider.shutdown()


def instrument(
    app: FastAPI,
    *,
    model_name: str,
    model_version: str,
    service: str,
    registry: CollectorRegistry | None = None,
    tracing: TracingConfig | None = None,
    log_stream: TextIO | None = sys.stdout,
    excluded_paths: frozenset[str] = DEFAULT_EXCLUDED,
) -> Instrumentation:
    """Add the contract's metrics, `/metrics`, JSON request logs and traces to `app`.

    `registry`: where the metrics live (default: a new one, served at `/metrics`).
    `tracing`: None records no spans and so attaches no exemplars (an exemplar must
    always resolve to exported spans). `log_stream`: where the JSON request lines go
    (None: records go to the `rollout.requests.<service>` logger's parents instead).
    Requests to `excluded_paths` (the scrape and health check) are served untouched.
    """
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ModelMetrics(registry, model_name, model_version)
    provider: TracerProvider | None = None
    sampler: TailSampler | None = None
    if tracing is not None:
        provider = TracerProvider(
            sampler=ALWAYS_ON,  # record everything; TailSamplingProcessor decides what leaves
            resource=Resource.create({"service.name": service, "service.version": model_version}),
        )
        provider.add_span_processor(
            TailSamplingProcessor(JsonLinesSpanExporter(tracing.spans_file))
        )
        sampler = TailSampler(tracing)
        tracer = provider.get_tracer("rollout.instrument")
    else:
        tracer = trace.NoOpTracer()
    inst = Instrumentation(
        model_name=model_name,
        model_version=model_version,
        service=service,
        metrics=metrics,
        tracer=tracer,
        logger=request_logger(service, log_stream),
        sampler=sampler,
        provider=provider,
        excluded_paths=excluded_paths,
    )
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"], include_in_schema=False)
    app.add_middleware(_ContractMiddleware, inst=inst, app_ref=app)
    return inst


def _route_template(app: FastAPI, scope: Scope) -> str:
    """The matched route's template (`/predict`), never the raw path with its IDs."""
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class _ContractMiddleware:
    def __init__(self, app: ASGIApp, inst: Instrumentation, app_ref: FastAPI) -> None:
        self.app = app
        self.inst = inst
        self.app_ref = app_ref

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.inst.excluded_paths:
            await self.app(scope, receive, send)
            return
        inst = self.inst
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = request_id_from(headers.get("x-request-id"))
        parent_context = _W3C.extract(headers)
        parent = trace.get_current_span(parent_context).get_span_context()
        parent_sampled = parent.trace_flags.sampled if parent.is_valid else None
        route = _route_template(self.app_ref, scope)
        method = scope.get("method", "GET")
        root = inst.tracer.start_span(
            f"{method} {route}",
            context=parent_context,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "model_name": inst.model_name,
                "model_version": inst.model_version,
                "request_id": request_id,
            },
        )
        trace_id = root.get_span_context().trace_id
        trace_hex = format(trace_id, "032x") if trace_id else ""
        status_code = 500  # until the app answers: an exception before it is a failure
        failed_by_exception = False

        async def send_with_ids(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                extra = [(b"x-request-id", request_id.encode())]
                if trace_hex:
                    extra.append((b"x-trace-id", trace_hex.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        token = _request_id.set(request_id)
        inst.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            with trace.use_span(root, end_on_exit=False):
                await self.app(scope, receive, send_with_ids)
        except Exception:
            failed_by_exception = True
            raise
        finally:
            latency = time.perf_counter() - started
            inst.metrics.in_flight.dec()
            _request_id.reset(token)
            failed = failed_by_exception or status_code >= 500
            self._finish(root, trace_id, latency, status_code, failed, parent_sampled)
            fields = {
                "route": route,
                "method": method,
                "model_name": inst.model_name,
                "model_version": inst.model_version,
                "request_id": request_id,
                "trace_id": trace_hex or None,
                "latency_ms": round(latency * 1000.0, 3),
                "http_status": status_code,
                "status": "error" if failed else "ok",
            }
            log_request(inst.logger, logging.ERROR if failed else logging.INFO, fields)

    def _finish(
        self,
        root: trace.Span,
        trace_id: int,
        latency: float,
        status_code: int,
        failed: bool,
        parent_sampled: bool | None,
    ) -> None:
        """Decide the trace, end the root span (exporting it), then write the metrics."""
        inst = self.inst
        kept = False
        if inst.sampler is not None and trace_id:
            decision = inst.sampler.decide(trace_id, latency, failed, parent_sampled)
            kept = decision.kept
            root.set_attribute(KEPT_ATTRIBUTE, kept)
            root.set_attribute(REASON_ATTRIBUTE, decision.reason)
        root.set_attribute("http.response.status_code", status_code)
        if failed:
            root.set_status(Status(StatusCode.ERROR))
        root.end()
        # Only now are a kept trace's spans in the file: the exemplar may name it.
        inst.metrics.observe_request(latency, failed, format(trace_id, "032x") if kept else None)
