"""The controller's logs: one JSON object a line (`--log-format json`), or plain text.

JSON lines carry `ts`, `level`, `logger`, `message` and the rollout's fields (`rollout`,
`namespace`, `model`, `versions`, `step`, `decision`, `trace_id`, ...), given to a log call
as `extra={"fields": {...}}`. `RolloutLog` is the observer that logs what each tick did
(every look with its verdict, every step and decision, outages and the report), with the
tick's trace ID, so a log line leads to its trace.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, TextIO

from rollout.analysis.stats import version_error_rate, version_p95
from rollout.engine import Looked, RouterFailed, SourceFailed
from rollout.notify.notices import namespace_of, notice_kind
from rollout.reconcile import Advanced, Outcome, ReportDone, Rollout
from rollout.state import RolloutState
from rollout.telemetry import LogFormat
from rollout.telemetry.tracing import current_trace_id

log = logging.getLogger("rollout.controller")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(
    fmt: LogFormat, stream: TextIO, text_level: int = logging.WARNING
) -> logging.Handler:
    """Route the `rollout` loggers to `stream`: every line as JSON from INFO up, or as text
    from `text_level` up (WARNING for `rollout run`, whose console already tells the rest).
    Returns the handler installed."""
    handler = logging.StreamHandler(stream)
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
        level = logging.INFO
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        level = text_level
    logger = logging.getLogger("rollout")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def _number(value: float | None, scale: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value * scale, 3)


class RolloutLog:
    """An observer writing one log line per look, step, decision, outage and report."""

    def on_outcome(self, rollout: Rollout, outcome: Outcome, seconds: float) -> None:
        trace_id = current_trace_id()
        for happening in outcome.happened:
            if isinstance(happening, ReportDone):
                paths = [str(p) for p in happening.paths.values()]
                fields = self._fields(rollout, outcome.state, trace_id, happening.report.decision)
                fields["report"] = paths
                log.info("report written: %s", ", ".join(paths) or "none", extra={"fields": fields})
                continue
            self._advanced(rollout, happening, trace_id)

    def _advanced(self, rollout: Rollout, happening: Advanced, trace_id: str) -> None:
        state, event = happening.state, happening.event
        if isinstance(event, Looked) and state.judgement is not None:
            look = event.observation
            verdict = state.judgement.verdict.value
            fields = self._fields(rollout, state, trace_id, verdict)
            fields["look"] = {
                "start": look.start,
                "end": look.end,
                "p95_ms": {
                    "baseline": _number(version_p95(look.baseline), 1000.0),
                    "candidate": _number(version_p95(look.candidate), 1000.0),
                },
                "error_rate": {
                    "baseline": _number(version_error_rate(look.baseline), 1.0),
                    "candidate": _number(version_error_rate(look.candidate), 1.0),
                },
            }
            log.info("look %d: %s", len(state.history), verdict, extra={"fields": fields})
        if isinstance(event, SourceFailed | RouterFailed):
            what = "metrics source" if isinstance(event, SourceFailed) else "router"
            fields = self._fields(rollout, state, trace_id, None)
            log.warning("%s failing: %s", what, event.reason, extra={"fields": fields})
        kind = notice_kind(happening.previous, state)
        if kind is not None:
            fields = self._fields(rollout, state, trace_id, kind.value)
            fields["weights"] = {
                "baseline": state.desired.baseline,
                "candidate": state.desired.candidate,
            }
            log.info("%s: %s", kind.value, state.message, extra={"fields": fields})

    @staticmethod
    def _fields(
        rollout: Rollout, state: RolloutState, trace_id: str, decision: str | None
    ) -> dict[str, Any]:
        target = rollout.target
        fields: dict[str, Any] = {
            "rollout": rollout.name,
            "namespace": namespace_of(rollout),
            "model": target.model,
            "versions": {"baseline": target.baseline, "candidate": target.candidate},
            "step": state.step + 1,
            "phase": state.phase.value,
            "decision": decision,
        }
        if trace_id:
            fields["trace_id"] = trace_id
        return fields

    def close(self) -> None:
        return
