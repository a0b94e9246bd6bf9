"""Gives requests DRF never handles the same error envelope: unknown routes, oversized bodies, crashes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware

from . import logging as log_context
from .exceptions import UNAVAILABLE_MESSAGE, error_response, is_unavailable

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: ("BAD_REQUEST", "The request is malformed."),
    403: ("FORBIDDEN", "You are not allowed to do this."),
    404: ("NOT_FOUND", "Not found."),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed."),
    500: ("INTERNAL", "An internal error occurred."),
}


class ErrorEnvelopeMiddleware:
    """Outermost middleware for the API: body size check first, envelope on bare Django errors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_api = request.path.startswith("/v1/") or request.path == "/v1"
        if is_api:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response("BAD_REQUEST", "Invalid Content-Length header.", 400)
            # PostgreSQL refuses NUL in any text parameter: a NUL in a path segment or query value was a 500.
            if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
                return error_response(
                    "BAD_REQUEST",
                    "The URL must not contain the NUL character.",
                    400,
                    {"url": ["NUL (%00) is not allowed."]},
                )
            if length > settings.SPINDLE_MAX_REQUEST_BYTES:
                return error_response(
                    "PAYLOAD_TOO_LARGE",
                    "The request body is too large.",
                    413,
                    {"limit_bytes": settings.SPINDLE_MAX_REQUEST_BYTES},
                )
        response = self.get_response(request)
        if is_api and response.status_code in _STATUS_CODES and not _is_json(response):
            code, message = _STATUS_CODES[response.status_code]
            enveloped = error_response(code, message, response.status_code)
            if response.has_header("Allow"):
                enveloped["Allow"] = response["Allow"]
            return enveloped
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/v1/"):
            return None
        if is_unavailable(exception):
            logger.warning(
                "backing service unavailable on %s %s: %r", request.method, request.path, exception
            )
            return _unavailable()
        logger.exception("unhandled error on %s %s", request.method, request.path, exc_info=exception)
        return error_response("INTERNAL", "An internal error occurred.", 500)


def _is_json(response: HttpResponse) -> bool:
    return isinstance(response, JsonResponse) or response.get("Content-Type", "").startswith(
        "application/json"
    )


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response("NOT_FOUND", "Not found.", 404)


def _unavailable() -> HttpResponse:
    response = error_response("SERVICE_UNAVAILABLE", UNAVAILABLE_MESSAGE, 503)
    response["Retry-After"] = "5"
    return response


def handler500(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its `except`: a database or broker outage raised in a middleware lands here.
    exc = sys.exc_info()[1]
    if exc is not None and is_unavailable(exc):
        return _unavailable()
    return error_response("INTERNAL", "An internal error occurred.", 500)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response("BAD_REQUEST", "The request is malformed.", 400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response("FORBIDDEN", "You are not allowed to do this.", 403)


class _NotForApi:
    """Skips the wrapped Django middleware on the paths in `skipped_on` (/v1/): the API authenticates every
    request by bearer token and keeps no session, CSRF cookie, session user or flash message, and these four cost
    ~5% of an enqueue's CPU. The admin and the docs keep them; the subclasses still satisfy the admin's system
    checks."""

    get_response: Callable[[HttpRequest], HttpResponse]
    skipped_on: tuple[str, ...] = ("/v1/",)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.skipped_on):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddlewareNotForApi(_NotForApi, SessionMiddleware):
    pass


class CsrfViewMiddlewareNotForApi(_NotForApi, CsrfViewMiddleware):
    """No CSRF check on Spooled's /api/v1/ either: it reads no cookie (a bearer API key or JWT; its WebSocket takes
    the token in `?token=`, its inbound webhooks a token or signature header), so a forged cross-site request
    carries nothing that authenticates it. Django runs `process_view` outside `__call__`, so it is skipped here
    too: else a plain Django view there (the catch-all of unknown routes) answers an unsafe method with the
    HTML 403 "CSRF cookie not set" instead of Spooled's JSON 404."""

    skipped_on = ("/v1/", "/api/v1/")

    def process_view(
        self,
        request: HttpRequest,
        callback: Callable[..., HttpResponse],
        callback_args: tuple,
        callback_kwargs: dict,
    ) -> HttpResponse | None:
        if request.path_info.startswith(self.skipped_on):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddlewareNotForApi(_NotForApi, AuthenticationMiddleware):
    pass


class MessageMiddlewareNotForApi(_NotForApi, MessageMiddleware):
    pass


class RequestIdMiddleware:
    """One id per request: the client's `X-Request-Id` when it is a sane token, else a new one. Bound to the log
    context while the request runs (so the hints it sends carry it into their Celery tasks) and echoed in the
    answer's `X-Request-Id`. Outermost, so every answer has it, errors and HEAD included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = log_context.new_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = rid  # type: ignore[attr-defined]
        token = log_context.bind(request_id=rid)
        try:
            response = self.get_response(request)
        finally:
            # The server's threads serve one request after another: nothing may leak into the next.
            log_context.reset(token)
        response[log_context.HEADER] = rid
        return response


class HeadAsGetMiddleware:
    """HEAD answers as GET does on every route (RFC 9110 §9.3.2): the view runs as GET, its body is dropped.

    Outermost, so every middleware and view sees one method. A streaming answer (an event stream) is not run:
    its status and headers are returned without it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "HEAD":
            return self.get_response(request)
        request.method = request.META["REQUEST_METHOD"] = "GET"
        response = self.get_response(request)
        if not response.streaming:
            # No body, whatever serves it (Django's own handlers do not strip it); the length stays GET's.
            length = response.get("Content-Length", str(len(response.content)))
            response.content = b""
            response["Content-Length"] = length
            return response
        headers = HttpResponse(status=response.status_code)
        for name, value in response.items():
            headers[name] = value
        # The unstarted stream is closed when the server finishes this answer, with the request: closing it
        # here would send request_finished mid-request (and close this thread's database connections).
        headers._resource_closers.extend(response._resource_closers)
        return headers


# Scripts from this origin only (the dashboard's htmx files are served by the app itself), no framing at all.
CONTENT_SECURITY_POLICY = "frame-ancestors 'none'; script-src 'self'; object-src 'none'; base-uri 'self'"
# Swagger UI runs an inline bootstrap script: it keeps its frame protection, not the script rule.
_SCRIPTS_INLINE = ("/docs",)


class BrowserSecurityMiddleware:
    """Clickjacking protection and cookie flags for what browsers load: the dashboard, the admin, /docs.

    X-Frame-Options DENY and a CSP on every answer outside the API (the API answers JSON to programs). The session
    and CSRF cookies get `Secure` whenever the request is HTTPS, as told by a trusted proxy (config/forwarded.py).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith("/v1/"):
            return response
        response.setdefault("X-Frame-Options", "DENY")
        policy = "frame-ancestors 'none'" if request.path_info in _SCRIPTS_INLINE else CONTENT_SECURITY_POLICY
        response.setdefault("Content-Security-Policy", policy)
        if request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["secure"] = True
        return response
