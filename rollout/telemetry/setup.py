"""Telemetry for one process: logging, tracing and the metrics server, set up and torn down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rollout.observe import Observer
from rollout.telemetry import LogFormat
from rollout.telemetry.logs import RolloutLog, configure_logging
from rollout.telemetry.metrics import RolloutMetrics, serve_metrics
from rollout.telemetry.tracing import configure_tracing


@contextmanager
def running_telemetry(
    *,
    log_format: LogFormat,
    log_stream: TextIO,
    metrics_port: int | None = None,
    metrics_address: str = "127.0.0.1",
    text_level: int = logging.WARNING,
) -> Iterator[list[Observer]]:
    """Logging, tracing and (with a port) the metrics server; yields the observers to hand
    the driver. OSError when the metrics port cannot be bound. Spans still queued are
    exported on the way out."""
    server = None
    observers: list[Observer] = []
    if metrics_port is not None:
        metrics = RolloutMetrics()
        server = serve_metrics(metrics.registry, metrics_port, metrics_address)
        observers.append(metrics)
    logger = logging.getLogger("rollout")
    before = (list(logger.handlers), logger.level, logger.propagate)
    configure_logging(log_format, log_stream, text_level)
    if log_format is LogFormat.JSON:
        observers.append(RolloutLog())
    provider = configure_tracing()
    try:
        yield observers
    finally:
        if server is not None:
            server.stop()
        if provider is not None:
            provider.shutdown()
        # As it was: a process that runs more than one rollout (tests, a notebook) logs on.
        logger.handlers[:], logger.level, logger.propagate = before
