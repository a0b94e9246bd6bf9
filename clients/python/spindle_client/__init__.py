"""Spindle's Python client: `Spindle` for the API, `verify_delivery` for receivers, the `spindle` CLI (cli.py)."""

from __future__ import annotations

from spindle_client.client import DEFAULT_URL, Spindle, __version__
from spindle_client.errors import (
    AuthenticationError,
    ConflictError,
    ConnectionFailed,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitedError,
    ServerError,
    ServiceUnavailableError,
    SpindleError,
)
from spindle_client.models import CreatedQueue, Event, Job, Queue, Schedule
from spindle_client.webhooks import InvalidSignature, sign, verify_delivery

__all__ = [
    "DEFAULT_URL",
    "AuthenticationError",
    "ConflictError",
    "ConnectionFailed",
    "CreatedQueue",
    "Event",
    "InvalidRequestError",
    "InvalidSignature",
    "Job",
    "NotFoundError",
    "PermissionDeniedError",
    "Queue",
    "QuotaError",
    "RateLimitedError",
    "Schedule",
    "ServerError",
    "ServiceUnavailableError",
    "Spindle",
    "SpindleError",
    "__version__",
    "sign",
    "verify_delivery",
]
