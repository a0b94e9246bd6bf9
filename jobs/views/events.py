"""`GET /v1/events` and `GET /v1/queues/{name}/events`: Server-Sent Events, or a JSON list with `?format=json`.

The stream authenticates with the same Bearer logic as every route, sends a `connected` event, then polls the
outbox (queues.models.Event) every ~0.5 s and sends each event with `id:` (its event id), `event:` (its type) and
`data:` (its JSON); a comment heartbeat keeps proxies from closing an idle connection. `Last-Event-ID` resumes
after that event. Every SPINDLE_SSE_AUTH_RECHECK_S (30 s) the credential is checked again: a revoked or rotated
key, or a deleted workspace, ends the stream with an `event: closed`. A workspace holds at most
SPINDLE_MAX_STREAMS_PER_WORKSPACE streams at once (slots in the shared cache); one more is 429 RATE_LIMITED.

Where it runs: under ASGI (config.front, which `make run` serves on PORT, or config.asgi) the stream is an
async generator and holds no thread. Under WSGI (gunicorn hit directly) it would hold a worker thread, so
there it is bounded: at most SPINDLE_WSGI_MAX_STREAMS (2) per process, each ending cleanly after
SPINDLE_WSGI_STREAM_MAX_S (60 s) so EventSource reconnects with Last-Event-ID; more are 503
SERVICE_UNAVAILABLE. The other threads keep serving REST (`/v1/health` included).

The loop, the slots, the late-commit window and the WSGI bounds are jobs.services.streams (shared with the
dashboard's feed); this module authenticates, admits and builds the response.

`?format=json` (or `Accept: application/json` without `text/event-stream`) is an ordinary DRF view (it also
works under WSGI): oldest first, `after=evt_…`, limit/cursor.
"""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication, JwtAuthentication
from config.api import error_responses, list_envelope
from config.exceptions import ApplicationError, BadRequest, RateLimited, ServiceUnavailable, error_response
from config.pagination import paginate
from config.ratelimit import workspace_rate_consume
from jobs.services import streams
from queues.events import event_to_dict
from queues.selectors import event_list, queue_get

EVENT_ID_RE = re.compile(r"^evt_[0-9a-z]{26}$")
# The `closed` event's data when a long stream's key or token no longer holds.
UNAUTHORIZED_CLOSE = {
    "reason": "UNAUTHORIZED",
    "message": "The key or token was revoked or is no longer valid.",
}


def _event_id_param(raw: str | None, field: str) -> str | None:
    if raw in (None, ""):
        return None
    if not EVENT_ID_RE.match(raw):
        raise BadRequest(
            f"`{field}` must be an event id (evt_…).", details={field: ["Expected an evt_… id."]}
        )
    return raw


def _queue_exists(workspace: Any, name: str) -> None:
    queue_get(workspace=workspace, name=name)  # raises NotFound (another workspace's queue too)


def _wants_json(request: HttpRequest) -> bool:
    """`?format=json`, or a client that accepts JSON and not an event stream (EventSource always asks for one)."""
    if request.GET.get("format") == "json":
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


class EventSchema(serializers.Serializer):
    """Documentation only: one event as `data:` carries it and as the JSON list renders it."""

    id = serializers.CharField(help_text="evt_…")
    type = serializers.CharField(help_text="job:waiting, job:failed, queue:paused, schedule:fired, …")
    queue = serializers.CharField(allow_null=True)
    job_id = serializers.CharField(allow_null=True)
    data = serializers.DictField()
    created_at = serializers.DateTimeField()


class EventsView(APIView):
    """One class for both formats: DRF handles `?format=json`; `as_view` routes everything else to the stream."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        drf_view = super().as_view(**initkwargs)
        json_view = sync_to_async(drf_view)

        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != "GET" or _wants_json(request):
                return await json_view(request, *args, **kwargs)
            return await sse_response(request, queue_name=kwargs.get("name"))

        markcoroutinefunction(view)
        # drf-spectacular and DRF's own introspection read these, as on the view DRF builds.
        view.cls = cls  # type: ignore[attr-defined]
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        return csrf_exempt(view)

    @extend_schema(
        tags=["Events"],
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["json"],
                description="`json`: a list envelope instead of the event stream (so does `Accept: "
                "application/json` without `text/event-stream`)",
            ),
            OpenApiParameter("after", OpenApiTypes.STR, description="JSON: events after this evt_… id"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="JSON: 1..1000, default 50"),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Stream: resume after this event id",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="`event: connected` first; then per event `id: evt_…`, `event: <type>`, "
                "`data: <event JSON>`; a `: heartbeat` comment every 15 s. The credential is "
                "re-checked every 30 s: a revoked key or deleted workspace ends the stream with "
                '`event: closed` (`data: {"reason": "UNAUTHORIZED"}`).',
            ),
            (200, "application/json"): list_envelope("EventList", EventSchema),
            **error_responses(400, 401, 404, 429, 503),
        },
        description="The workspace's events (or one queue's) as Server-Sent Events; `?format=json` lists them "
        "oldest first with the list envelope.\n\n"
        "At most `SPINDLE_MAX_STREAMS_PER_WORKSPACE` (default 10) streams per workspace are open at "
        "once; one more answers 429 `RATE_LIMITED`.\n\n"
        "Streams are served without holding a thread by the ASGI front (`config.front`, the port "
        "`make run` serves). A WSGI server (gunicorn) reached directly serves them bounded: at most "
        "`SPINDLE_WSGI_MAX_STREAMS` (default 2) per process, each ending cleanly after "
        "`SPINDLE_WSGI_STREAM_MAX_S` (default 60 s) so EventSource reconnects with `Last-Event-ID`; "
        "beyond that it answers 503 `SERVICE_UNAVAILABLE` with `Retry-After`: route the stream paths "
        "to the ASGI process.",
    )
    def get(self, request: Request, name: str | None = None) -> Response:
        workspace = request.user.workspace
        if name is not None:
            _queue_exists(workspace, name)
        after = _event_id_param(request.query_params.get("after"), "after")
        qs = event_list(workspace=workspace, queue_name=name, after=after)
        page = paginate(
            qs, request.query_params, lambda rows: [event_to_dict(e) for e in rows], newest_first=False
        )
        return Response(page)


# --- the stream ----------------------------------------------------------------------------------------------
# The loop, slots and WSGI bounds live in jobs.services.streams; here: authenticate, admit, build the response.


def _principal(request: HttpRequest) -> Any:
    """The request's principal by the same Bearer logic as DRF routes; None when there is no credential."""
    for authenticator in (ApiKeyAuthentication(), JwtAuthentication()):
        found = authenticator.authenticate(request)  # type: ignore[arg-type]
        if found is not None:
            return found[0]
    return None


def _authenticate(request: HttpRequest, queue_name: str | None) -> tuple[Any, Any]:
    """(workspace, rate state) by the same Bearer logic as DRF routes; raises DRF or application errors."""
    principal = _principal(request)
    if principal is None:
        raise drf_exceptions.NotAuthenticated("Missing, malformed, revoked or unknown API key or token.")
    workspace = principal.workspace
    # One stream counts as one request against the plan's requests/minute.
    state = workspace_rate_consume(request, workspace=workspace)
    if state is not None and state.limited:
        raise RateLimited(details={"retry_after_s": state.retry_after_s})
    if queue_name is not None:
        _queue_exists(workspace, queue_name)
    return workspace, state


def _still_authorized(request: HttpRequest, workspace_id: str) -> bool:
    """A long stream's periodic check: the key (or token) still names the same, still existing workspace."""
    try:
        principal = _principal(request)
    except drf_exceptions.APIException:
        return False
    return principal is not None and principal.workspace.id == workspace_id


def _open_stream(request: HttpRequest, queue_name: str | None) -> tuple[Any, Any, streams.StreamSlot]:
    workspace, state = _authenticate(request, queue_name)
    recheck_s = streams.stream_setting("SPINDLE_SSE_AUTH_RECHECK_S", streams.AUTH_RECHECK_S)
    slot = streams.StreamSlot(workspace.id, ttl_s=max(10, int(recheck_s * 3) + 1))
    if not slot.acquire():
        cap = streams.stream_cap()
        raise RateLimited(
            f"This workspace already has {cap} open event streams; close one first.",
            details={"limit": cap, "retry_after_s": 5},
        )
    return workspace, state, slot


def _error(exc: Exception) -> HttpResponse:
    if isinstance(exc, ApplicationError):
        response = error_response(exc.code, exc.message, exc.status_code, exc.details)
        if "retry_after_s" in exc.details:
            response["Retry-After"] = str(exc.details["retry_after_s"])
        return response
    assert isinstance(exc, drf_exceptions.APIException)
    response = error_response("UNAUTHORIZED", str(exc.detail), 401)
    response["WWW-Authenticate"] = 'Bearer realm="spindle"'
    return response


def _event_stream(
    request: HttpRequest, *, workspace_id: str, queue_name: str | None, last_event_id: str | None, slot: Any
) -> streams.EventStream:
    """The stream's timing from settings; under WSGI it also ends after SPINDLE_WSGI_STREAM_MAX_S."""
    max_seconds: float | None = getattr(settings, "SPINDLE_SSE_MAX_SECONDS", None)
    if not isinstance(request, ASGIRequest):
        wsgi_max = streams.stream_setting("SPINDLE_WSGI_STREAM_MAX_S", streams.WSGI_STREAM_MAX_S)
        max_seconds = wsgi_max if max_seconds is None else min(float(max_seconds), wsgi_max)
    return streams.EventStream(
        workspace_id=workspace_id,
        queue_name=queue_name,
        last_event_id=last_event_id,
        slot=slot,
        still_authorized=lambda: _still_authorized(request, workspace_id),
        closed=UNAUTHORIZED_CLOSE,
        poll_s=streams.stream_setting("SPINDLE_SSE_POLL_S", streams.POLL_S),
        heartbeat_s=streams.stream_setting("SPINDLE_SSE_HEARTBEAT_S", streams.HEARTBEAT_S),
        recheck_s=streams.stream_setting("SPINDLE_SSE_AUTH_RECHECK_S", streams.AUTH_RECHECK_S),
        max_seconds=max_seconds,
    )


async def sse_response(request: HttpRequest, *, queue_name: str | None) -> HttpResponse:
    under_asgi = isinstance(request, ASGIRequest)
    if not under_asgi and not streams.wsgi_stream_admit():
        return _error(
            ServiceUnavailable(
                "Every event-stream slot of this web process is taken. Serve the stream routes from the ASGI "
                "process (config.front, or config.asgi behind a proxy) to hold streams without threads.",
                details={"retry_after_s": 5},
            )
        )
    try:
        last_event_id = _event_id_param(
            request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"), "Last-Event-ID"
        )
        workspace, state, slot = await streams.take_in_thread(
            lambda: _open_stream(request, queue_name), lambda opened: opened[2].release()
        )
    except (ApplicationError, drf_exceptions.APIException) as exc:
        if not under_asgi:
            streams.wsgi_stream_release()
        return _error(exc)
    except BaseException:  # e.g. the database is down: the thread slot must not leak with the error
        if not under_asgi:
            streams.wsgi_stream_release()
        raise
    stream = _event_stream(
        request, workspace_id=workspace.id, queue_name=queue_name, last_event_id=last_event_id, slot=slot
    )
    frames = streams.async_frames(stream) if under_asgi else streams.SyncFrames(stream)
    response = StreamingHttpResponse(frames, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    if state is not None:
        response["X-RateLimit-Limit"] = str(state.limit)
        response["X-RateLimit-Remaining"] = str(state.remaining)
        response["X-RateLimit-Reset"] = str(state.reset)
    return response
