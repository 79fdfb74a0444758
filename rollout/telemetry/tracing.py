"""The controller's OpenTelemetry spans: one per tick of a rollout, with children for the
metrics queries, the judge, the router and the evidence.

Spans are made through the OpenTelemetry API (a no-op until a provider is installed), so
the reconciler opens them whoever drives it. `configure_tracing` installs the SDK's
provider: trace IDs then exist (the JSON logs carry them), and spans are exported over
OTLP/HTTP when the standard variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; headers, timeout, `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES` as the SDK reads them; `OTEL_SDK_DISABLED=true` turns it off).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from rollout.reconcile import Rollout

log = logging.getLogger("rollout.telemetry")
tracer = trace.get_tracer("rollout")
SERVICE_NAME = "rollout-controller"


@contextmanager
def tick_span(rollout: Rollout) -> Iterator[trace.Span]:
    target = rollout.target
    attributes = {
        "rollout.name": rollout.name,
        "rollout.key": rollout.key,
        "model_name": target.model,
        "rollout.baseline": target.baseline,
        "rollout.candidate": target.candidate,
    }
    with tracer.start_as_current_span("rollout.tick", attributes=attributes) as span:
        yield span


@contextmanager
def child_span(name: str, **attributes: str | int | float | bool) -> Iterator[trace.Span]:
    """A span under the current one (the tick's): `with child_span("rollout.judge"):`."""
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def current_trace_id() -> str:
    """The current span's trace ID in hex, or "" outside a recorded span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else ""


def configure_tracing() -> TracerProvider | None:
    """Install the SDK's tracer provider for this process (once); None when disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    if _exporting():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _exporting() -> bool:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip() == "none":
        return False
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if protocol not in ("", "http/protobuf"):
        log.warning("OTLP protocol %r is not supported: spans go over http/protobuf", protocol)
    return True
