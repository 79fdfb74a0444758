"""JSON logs: one object per line, one line per request.

The request log carries identifiers that are safe to keep (request ID, trace ID, route
template) and never the request body, query string or path parameters, where raw user
IDs would live.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

REQUEST_LOGGER = "rollout.requests"
_FIELDS_KEY = "json_fields"
# A caller's x-request-id is echoed only when it looks like an ID, so it cannot
# smuggle arbitrary text (or a user's e-mail) into the logs.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(header: str | None) -> str:
    """The caller's request ID when it is a plausible ID, otherwise a new one."""
    if header and _SAFE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """ts, level, service, then the record's fields (passed as `extra={"json_fields": {...}}`)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
        }
        fields = getattr(record, _FIELDS_KEY, None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            line["error_type"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


def request_logger(service: str, stream: TextIO | None) -> logging.Logger:
    """The per-service request logger; writes JSON lines to `stream` when one is given."""
    logger = logging.getLogger(f"{REQUEST_LOGGER}.{service}")
    logger.setLevel(logging.INFO)
    if stream is not None:
        for old in list(logger.handlers):
            logger.removeHandler(old)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter(service))
        logger.addHandler(handler)
        logger.propagate = False  # one line per request, not one per handler up the tree
    return logger


def log_request(logger: logging.Logger, level: int, fields: dict[str, Any]) -> None:
    logger.log(level, "request", extra={_FIELDS_KEY: fields})
