"""One error envelope for everything: `{"error": {"code", "message", "details"}}`.

Services and views raise `ApplicationError` subclasses (or DRF's exceptions); `exception_handler` turns every
exception that reaches DRF into the envelope, and `config.middleware` plus `handler404`/`handler500` do the
same for paths DRF never sees.
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db.models import Model, QuerySet
from django.http import Http404, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """Base of every domain error; subclasses set `code`, `status_code` and a default message."""

    code = "BAD_REQUEST"
    status_code = status.HTTP_400_BAD_REQUEST
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class BadRequest(ApplicationError):
    code = "BAD_REQUEST"
    status_code = 400
    default_message = "The request is malformed."


class ValidationFailed(ApplicationError):
    """Field errors: `details` maps field -> list of messages."""

    code = "VALIDATION_ERROR"
    status_code = 400
    default_message = "The request has invalid fields."


class NotFound(ApplicationError):
    code = "NOT_FOUND"
    status_code = 404
    default_message = "Not found."


_M = TypeVar("_M", bound=Model)


def first_or_404(queryset: QuerySet[_M], message: str) -> _M:
    """The queryset's first row. The lookups filter by workspace, so another workspace's row is a 404 like an
    unknown one."""
    row = queryset.first()
    if row is None:
        raise NotFound(message)
    return row


class Forbidden(ApplicationError):
    code = "FORBIDDEN"
    status_code = 403
    default_message = "You are not allowed to do this."


class Conflict(ApplicationError):
    code = "CONFLICT"
    status_code = 409
    default_message = "The request conflicts with the current state."


class InvalidState(ApplicationError):
    code = "INVALID_STATE"
    status_code = 409
    default_message = "The object's state does not allow this action."


class LeaseLost(ApplicationError):
    code = "LEASE_LOST"
    status_code = 409
    default_message = "The lease token is stale: the job was re-leased or finished."


class QuotaExceeded(ApplicationError):
    code = "QUOTA_EXCEEDED"
    status_code = 402
    default_message = "Monthly job quota exceeded for this workspace."


class PlanLimit(ApplicationError):
    code = "PLAN_LIMIT"
    status_code = 402
    default_message = "This plan does not allow that."


class PayloadTooLarge(ApplicationError):
    code = "PAYLOAD_TOO_LARGE"
    status_code = 413
    default_message = "The request body is too large."


class IdempotencyKeyReused(ApplicationError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status_code = 422
    default_message = "This Idempotency-Key was used with a different request body."


class RateLimited(ApplicationError):
    code = "RATE_LIMITED"
    status_code = 429
    default_message = "Too many requests."


class ServiceUnavailable(ApplicationError):
    code = "SERVICE_UNAVAILABLE"
    status_code = 503
    default_message = "A backing service is unavailable."


class BillingNotConfigured(ApplicationError):
    code = "SERVICE_UNAVAILABLE"
    status_code = 503
    default_message = "Billing is not configured on this Spindle installation."


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\w+)")


def violated_constraint(exc: Exception, model: type[Model]) -> str | None:
    """The name of the constraint an IntegrityError violated, on PostgreSQL and SQLite alike.

    PostgreSQL reports it (psycopg's `diag.constraint_name`); SQLite names only the columns of a unique
    violation, so those are matched against `model`'s named UniqueConstraints (DESIGN.md: map by name).
    """
    diag = getattr(exc.__cause__, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name:
        return str(name)
    text = str(exc)
    check = _SQLITE_CHECK.search(text)
    if check:
        return check.group(1)
    unique = _SQLITE_UNIQUE.search(text)
    if unique is None:
        return None
    table = model._meta.db_table
    columns = {part.strip().removeprefix(f"{table}.") for part in unique.group(1).split(",")}
    for constraint in model._meta.constraints:
        fields = getattr(constraint, "fields", None)
        if fields and {model._meta.get_field(f).column for f in fields} == columns:
            return constraint.name
    return None


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means a backing service is down or unreachable (database, broker, cache), not a bug.

    API.md answers those 503 SERVICE_UNAVAILABLE. Imports are lazy: kombu and redis are optional at runtime.
    """
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    try:
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
    except ImportError:
        pass
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError

        if isinstance(exc, KombuOperationalError):
            return True
    except ImportError:
        pass
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
            return True
    except ImportError:
        pass
    return False


UNAVAILABLE_MESSAGE = "A backing service (database or broker) is unavailable; retry shortly."


_DRF_CODES: dict[type[Exception], str] = {
    drf_exceptions.ParseError: "BAD_REQUEST",
    drf_exceptions.AuthenticationFailed: "UNAUTHORIZED",
    drf_exceptions.NotAuthenticated: "UNAUTHORIZED",
    drf_exceptions.PermissionDenied: "FORBIDDEN",
    drf_exceptions.NotFound: "NOT_FOUND",
    drf_exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf_exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    drf_exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    drf_exceptions.Throttled: "RATE_LIMITED",
    drf_exceptions.ValidationError: "VALIDATION_ERROR",
}

_DRF_MESSAGES = {
    "UNAUTHORIZED": "Missing, malformed, revoked or unknown API key or token.",
    "VALIDATION_ERROR": "The request has invalid fields.",
}


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    code: str, message: str, status_code: int, details: dict[str, Any] | None = None
) -> JsonResponse:
    """The envelope as a plain Django response, for paths outside DRF."""
    return JsonResponse(envelope(code, message, details), status=status_code)


def _validation_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {str(k): _as_messages(v) for k, v in detail.items()}
    return {"non_field_errors": _as_messages(detail)}


def _as_messages(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _as_messages(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return [str(v) for v in value]
        return [_as_messages(v) for v in value]
    return [str(value)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error that reaches a DRF view leaves in the envelope."""
    # Imported here: rest_framework.views imports the authentication classes, which import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ApplicationError):
        # Let DRF's handler roll back the transaction the same way it does for its own exceptions.
        drf_exception_handler(drf_exceptions.APIException(), context)
        response = Response(envelope(exc.code, exc.message, exc.details), status=exc.status_code)
        retry_after = exc.details.get("retry_after_s") if isinstance(exc.details, dict) else None
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
    if isinstance(exc, Ratelimited):
        # django-ratelimit's exception is a PermissionDenied; without this it would be a 403.
        exc = drf_exceptions.Throttled(detail="Too many requests.")
    elif isinstance(exc, RequestDataTooBig):
        return Response(envelope("PAYLOAD_TOO_LARGE", "The request body is too large."), status=413)
    elif isinstance(exc, (Http404,)):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None and is_unavailable(exc):
        logger.warning("backing service unavailable in %s: %r", context.get("view").__class__.__name__, exc)
        drf_exception_handler(drf_exceptions.APIException(), context)  # roll back like any other error
        return Response(
            envelope("SERVICE_UNAVAILABLE", UNAVAILABLE_MESSAGE), status=503, headers={"Retry-After": "5"}
        )
    if response is None:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(envelope("INTERNAL", "An internal error occurred."), status=500)

    code = "BAD_REQUEST"
    for cls, mapped in _DRF_CODES.items():
        if isinstance(exc, cls):
            code = mapped
            break
    if isinstance(exc, drf_exceptions.ValidationError):
        details = _validation_details(exc.detail)
        message = _DRF_MESSAGES["VALIDATION_ERROR"]
    else:
        details = {}
        detail = getattr(exc, "detail", None)
        message = _DRF_MESSAGES.get(code) or (str(detail) if detail else "Request failed.")
        if code == "UNAUTHORIZED" and detail:
            message = str(detail)
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            details = {"retry_after_s": int(exc.wait)}
    response.data = envelope(code, message, details)
    return response
