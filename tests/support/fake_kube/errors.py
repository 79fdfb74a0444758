"""API errors as the Kubernetes API server reports them: a `Status` object and an HTTP code."""

from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    return _REASONS.get(code, "Unknown")


class ApiError(Exception):
    """A failed request; `status()` is the body the server sends."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or reason_for(code)
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: str, group: str, name: str) -> dict[str, Any]:
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


def qualified(resource: str, group: str) -> str:
    """`configmaps` for the core group, `modelrollouts.rollout.mlops.dev` otherwise."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{qualified(resource, group)} "{name}" not found',
        details=_details(resource, group, name),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{qualified(resource, group)} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(resource, group, name),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        reason="Conflict",
        details=_details(resource, group, name),
    )


def stale(resource: str, group: str, name: str) -> ApiError:
    return conflict(
        resource,
        group,
        name,
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
    )


def invalid(kind: str, group: str, name: str, field: str, message: str) -> ApiError:
    return invalid_fields(kind, group, name, [(field, message)])


def invalid_fields(kind: str, group: str, name: str, problems: list[tuple[str, str]]) -> ApiError:
    """422 Invalid listing every (field, message), as the server words it."""
    causes = [{"reason": "FieldValueInvalid", "field": f, "message": m} for f, m in problems]
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    subject = f"{kind}.{group}" if group else kind
    listed = ", ".join(f"{f}: {m}" for f, m in problems)
    if len(problems) > 1:
        listed = f"[{listed}]"
    return ApiError(422, f'{subject} "{name}" is invalid: {listed}', details=details)


def expired(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
