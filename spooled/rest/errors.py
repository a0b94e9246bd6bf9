"""Spooled's error body on /api/v1: `{code, message, details}` (ROADMAP "Errors and paging under /api/v1").

Services raise the same exceptions as under /v1; this surface's own DRF exception handler renders them in
Spooled's shape and status: validation is 422, a stale lease is 409 `LEASE_EXPIRED`, and the plan's caps are 429
`QUOTA_EXCEEDED` without `Retry-After` (the SDK never retries those). /v1 keeps its envelope: this handler is set
per view (`SpooledView.get_exception_handler`), never in settings.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework.response import Response

from config.exceptions import ApplicationError
from config.exceptions import exception_handler as spindle_handler

# Spindle code -> (Spooled code, HTTP status); codes not listed keep their code and status.
_TRANSLATED: dict[str, tuple[str, int]] = {
    "VALIDATION_ERROR": ("VALIDATION_ERROR", 422),
    "LEASE_LOST": ("LEASE_EXPIRED", 409),
    "QUOTA_EXCEEDED": ("QUOTA_EXCEEDED", 429),
    "PLAN_LIMIT": ("QUOTA_EXCEEDED", 429),
}


class SpooledError(ApplicationError):
    """An error only this surface raises (its code is Spooled's own)."""


class LeaseExpired(SpooledError):
    code = "LEASE_EXPIRED"
    status_code = 409
    default_message = "The lease expired or does not match the job's current lease."


class Unsupported(SpooledError):
    code = "VALIDATION_ERROR"
    status_code = 422
    default_message = "This field is not supported by this server."


def spooled_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Spindle's handler (rollback, logging, 503 on a backing-service outage), then Spooled's shape."""
    response = spindle_handler(exc, context)
    error = response.data.get("error") if isinstance(response.data, dict) else None
    if not isinstance(error, dict):
        return response
    code, status = _TRANSLATED.get(error["code"], (error["code"], response.status_code))
    details = error.get("details") or {}
    if code == "QUOTA_EXCEEDED":
        # The SDK reads these from the body to fill QuotaExceededError; a quota error is never retried.
        if "Retry-After" in response:
            del response["Retry-After"]
    response.status_code = status
    response.data = spooled_body(code, error["message"], details)
    return response


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    return JsonResponse(spooled_body("NOT_FOUND", f"No route {request.path}."), status=404)
