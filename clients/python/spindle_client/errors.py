"""Typed errors for the API's one error envelope `{"error": {"code", "message", "details"}}`.

One class per kind of answer a caller handles differently (the HTTP status decides the class; `code` keeps the
envelope's finer reason, e.g. 409 `INVALID_STATE` beside 409 `CONFLICT`). 429 and 503 carry `retry_after`.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any


class SpindleError(Exception):
    """Any failed call: `status` is None when no HTTP answer came (connection refused, timeout)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        head = f"{self.code} ({self.status})" if self.status else self.code or "error"
        return f"{head}: {self.message}"


class ConnectionFailed(SpindleError):
    """The server could not be reached, or it did not answer in time (code CONNECTION_FAILED, no status)."""

    @classmethod
    def from_transport(cls, exc: Exception) -> ConnectionFailed:
        return cls(str(exc) or type(exc).__name__, code="CONNECTION_FAILED")


class InvalidRequestError(SpindleError):
    """400 VALIDATION_ERROR / BAD_REQUEST, 405, 413, 415, 422 (e.g. IDEMPOTENCY_KEY_REUSED): fix the request."""


class AuthenticationError(SpindleError):
    """401: missing, revoked or unknown key or token."""


class QuotaError(SpindleError):
    """402 QUOTA_EXCEEDED or PLAN_LIMIT: `details` has the limit and the plan."""


class PermissionDeniedError(SpindleError):
    """403."""


class NotFoundError(SpindleError):
    """404: unknown route or object (another workspace's objects too)."""


class ConflictError(SpindleError):
    """409: CONFLICT, INVALID_STATE (`details["state"]`) or LEASE_LOST."""


class RateLimitedError(SpindleError):
    """429: wait `retry_after` seconds."""


class ServiceUnavailableError(SpindleError):
    """503: database or broker down, or no stream slot on this process; `retry_after` when the server says."""


class ServerError(SpindleError):
    """Any other 5xx (500 INTERNAL)."""


_BY_STATUS: dict[int, type[SpindleError]] = {
    401: AuthenticationError,
    402: QuotaError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date, in seconds from now (None if absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def from_response(status: int, headers: Mapping[str, str], body: bytes) -> SpindleError:
    """The typed error for one non-2xx answer; a body that is not the envelope still gives its status."""
    try:
        envelope = json.loads(body)["error"]
        code, message = str(envelope["code"]), str(envelope["message"])
        details = envelope.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", body[:200].decode(errors="replace") or f"HTTP {status}", {}
    if status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = InvalidRequestError
    return cls(
        message,
        status=status,
        code=code,
        details=details,
        retry_after=parse_retry_after(headers.get("retry-after")) if status in (429, 503) else None,
    )
