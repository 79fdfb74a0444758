"""The controller's own telemetry, as the observability guide asks of every service: JSON
logs (logs.py), Prometheus metrics on /metrics (metrics.py) and OpenTelemetry spans
exported over OTLP (tracing.py). `setup.running_telemetry` sets them up for one process
(`rollout run` today, the in-cluster controller alike) and tears them down.
"""

from __future__ import annotations

from enum import StrEnum


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
