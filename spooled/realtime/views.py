"""Spooled's Server-Sent Events: `GET /api/v1/events[?queue=]` and `GET /api/v1/events/jobs/{id}`.

Authenticated by `Authorization: Bearer <API key or access token>` (what the SDK sends). Under ASGI (config.front
routes these paths to config.asgi, as it does /v1/events) a stream is an async generator and holds no thread; a
WSGI server reached directly serves them bounded as /v1/events is (SPINDLE_WSGI_MAX_STREAMS per process, each
at most SPINDLE_WSGI_STREAM_MAX_S). Refusals are Spooled's error body `{code, message, details}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from jobs.services import streams
from spooled.realtime.opening import JOB_ID_RE, QUEUE_FILTER_RE, Opened, Refused, open_stream, timing
from spooled.realtime.streams import JobStatusStream, SpooledEvents


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refusal(refused: Refused) -> HttpResponse:
    response = JsonResponse(refused.body(), status=refused.status)
    if refused.retry_after is not None:
        response["Retry-After"] = str(refused.retry_after)
    if refused.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="spindle"'
    return response


async def _serve(request: HttpRequest, build: Callable[[str, Opened], streams.Stream]) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _refusal(Refused(405, "METHOD_NOT_ALLOWED", "Use GET."))
    under_asgi = isinstance(request, ASGIRequest)
    if not under_asgi and not streams.wsgi_stream_admit():
        return _refusal(Refused(503, "SERVICE_UNAVAILABLE", "No event-stream slot is free here.", 5))
    token = _bearer(request)
    try:
        opened = await streams.take_in_thread(
            lambda: open_stream(token, request), lambda taken: taken.slot.release()
        )
    except Refused as refused:
        if not under_asgi:
            streams.wsgi_stream_release()
        return _refusal(refused)
    stream = build(token or "", opened)
    if request.method == "HEAD":
        await streams.db_sync(stream.close)()
        if not under_asgi:
            streams.wsgi_stream_release()
        return HttpResponse(content_type="text/event-stream")
    if not under_asgi:
        stream.max_seconds = min(
            stream.max_seconds or 1e9,
            streams.stream_setting("SPINDLE_WSGI_STREAM_MAX_S", streams.WSGI_STREAM_MAX_S),
        )
    body = streams.async_frames(stream) if under_asgi else streams.SyncFrames(stream)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _async_view(view: Callable[..., Any]) -> Callable[..., Any]:
    markcoroutinefunction(view)
    return csrf_exempt(view)


@_async_view
async def events(request: HttpRequest) -> HttpResponse:
    queue = request.GET.get("queue") or None
    if queue is not None and not QUEUE_FILTER_RE.match(queue):
        return _refusal(Refused(400, "VALIDATION_ERROR", "Invalid queue filter."))
    last_event_id = request.headers.get("Last-Event-ID") or None
    if last_event_id is not None and not last_event_id.startswith("evt_"):
        last_event_id = None

    def build(token: str, opened: Opened) -> streams.Stream:
        return SpooledEvents(
            workspace_id=opened.workspace_id,
            queue_name=queue,
            last_event_id=last_event_id,
            slot=opened.slot,
            **timing(token, opened.workspace_id),
        )

    return await _serve(request, build)


@_async_view
async def job_events(request: HttpRequest, job_id: str) -> HttpResponse:
    if not JOB_ID_RE.match(job_id):
        return _refusal(Refused(400, "VALIDATION_ERROR", "Invalid job id."))

    def build(token: str, opened: Opened) -> streams.Stream:
        return JobStatusStream(
            workspace_id=opened.workspace_id,
            job_id=job_id,
            slot=opened.slot,
            **timing(token, opened.workspace_id),
        )

    return await _serve(request, build)
