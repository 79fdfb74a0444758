"""Drop-in instrumentation for model servers: the metrics contract of DESIGN.md in one call."""

from rollout.instrument.export import JsonLinesSpanExporter, TailSamplingProcessor
from rollout.instrument.logs import JsonFormatter
from rollout.instrument.middleware import (
    FEATURE_SPAN,
    INFER_SPAN,
    SERIALIZE_SPAN,
    Instrumentation,
    instrument,
)
from rollout.instrument.sampling import Decision, TailSampler, TracingConfig

__all__ = [
    "FEATURE_SPAN",
    "INFER_SPAN",
    "SERIALIZE_SPAN",
    "Decision",
    "Instrumentation",
    "JsonFormatter",
    "JsonLinesSpanExporter",
    "TailSampler",
    "TailSamplingProcessor",
    "TracingConfig",
    "instrument",
]
