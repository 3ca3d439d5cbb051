"""Domain errors of the DataFlux service: a stable code, a sentence, an HTTP status and the field at fault.

REST maps them to one JSON shape (`error_body`) in `dataflux_api.app`; MCP maps them to ToolError.
The shape of every 4xx/5xx response body is
`{"error": {"code": "<reason_code>", "message": "...", "field": "<name or null>", "status": <int>}}`.
"""

from __future__ import annotations

from typing import Any


class DataFluxError(Exception):
    """A request DataFlux cannot fulfil, with a code clients can branch on."""

    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        field: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        self.extra = extra or {}
        super().__init__(f"{self.code}: {message}")

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.status, self.field, self.extra)


class Unauthorized(DataFluxError):
    status = 401


class Forbidden(DataFluxError):
    status = 403


class NotFound(DataFluxError):
    status = 404


class Conflict(DataFluxError):
    status = 409


class Invalid(DataFluxError):
    status = 422


class PayloadTooLarge(DataFluxError):
    status = 413


class Unavailable(DataFluxError):
    status = 503


def error_body(
    code: str, message: str, status: int, field: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The one JSON error shape of the REST API."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field, "status": status}
    if extra:
        error.update(extra)
    return {"error": error}
