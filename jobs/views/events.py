"""`GET /v1/events` and `GET /v1/queues/{name}/events`: Server-Sent Events, or a JSON list with `?format=json`.

The stream is an async view (served by the ASGI process, `uvicorn config.asgi:application`): it authenticates
with the same Bearer logic as every route, sends a `connected` event, then polls the outbox (jobs.Event) every
~0.5 s and sends each event with `id:` (its event id), `event:` (its type) and `data:` (its JSON); a comment
heartbeat keeps proxies from closing an idle connection. `Last-Event-ID` resumes after that event.

Outbox reads and late commits: event ids are taken before their transaction commits, so an event can become
visible after one with a bigger id. Each poll therefore re-reads a short window below the cursor
(SSE_LAG_S) and skips the ids already sent in it, instead of a bare "id > last sent".

`?format=json` is an ordinary DRF view (it also works under WSGI): oldest first, `after=evt_…`, limit/cursor.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
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
from config.exceptions import ApplicationError, BadRequest, RateLimited, error_response
from config.pagination import paginate
from config.ratelimit import workspace_rate_consume
from jobs.models import Event
from jobs.services.events import event_to_dict

EVENT_ID_RE = re.compile(r"^evt_[0-9a-z]{26}$")
POLL_S = 0.5
HEARTBEAT_S = 15.0
SSE_LAG_S = 2.0
POLL_BATCH = 500
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _id_floor(millis: int) -> str:
    head = []
    for _ in range(10):
        head.append(_ALPHABET[millis & 31])
        millis >>= 5
    return "evt_" + "".join(reversed(head)) + "0" * 16


def _event_id_param(raw: str | None, field: str) -> str | None:
    if raw in (None, ""):
        return None
    if not EVENT_ID_RE.match(raw):
        raise BadRequest(f"`{field}` must be an event id (evt_…).", details={field: ["Expected an evt_… id."]})
    return raw


def _queue_exists(workspace: Any, name: str) -> None:
    from queues.selectors import queue_get

    queue_get(workspace=workspace, name=name)  # raises NotFound (another workspace's queue too)


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
            if request.GET.get("format") == "json" or request.method != "GET":
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
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json"],
                             description="`json`: a list envelope instead of the event stream"),
            OpenApiParameter("after", OpenApiTypes.STR, description="JSON: events after this evt_… id"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="JSON: 1..1000, default 50"),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("Last-Event-ID", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="Stream: resume after this event id"),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="`event: connected` first; then per event `id: evt_…`, `event: <type>`, "
                            "`data: <event JSON>`; a `: heartbeat` comment every 15 s.",
            ),
            (200, "application/json"): list_envelope("EventList", EventSchema),
            **error_responses(400, 401, 404, 429),
        },
        description="The workspace's events (or one queue's) as Server-Sent Events; `?format=json` lists them "
                    "oldest first with the list envelope.",
    )
    def get(self, request: Request, name: str | None = None) -> Response:
        workspace = request.user.workspace
        if name is not None:
            _queue_exists(workspace, name)
        after = _event_id_param(request.query_params.get("after"), "after")
        qs = Event.objects.filter(workspace=workspace)
        if name is not None:
            qs = qs.filter(queue_name=name)  # index jobs_event_ws_queue
        if after:
            qs = qs.filter(id__gt=after)
        page = paginate(qs, request.query_params, lambda rows: [event_to_dict(e) for e in rows], newest_first=False)
        return Response(page)


# --- the stream ----------------------------------------------------------------------------------------------


def _authenticate(request: HttpRequest, queue_name: str | None) -> tuple[Any, Any]:
    """(workspace, rate state) by the same Bearer logic as DRF routes; raises DRF or application errors."""
    principal = None
    for authenticator in (ApiKeyAuthentication(), JwtAuthentication()):
        found = authenticator.authenticate(request)  # type: ignore[arg-type]
        if found is not None:
            principal = found[0]
            break
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


def _poll(workspace_id: str, queue_name: str | None, floor: str, sent: set[str]) -> list[dict[str, Any]]:
    qs = Event.objects.filter(workspace_id=workspace_id, id__gt=floor)
    if queue_name is not None:
        qs = qs.filter(queue_name=queue_name)
    if sent:
        qs = qs.exclude(id__in=list(sent))
    return [event_to_dict(e) for e in qs.order_by("id")[:POLL_BATCH]]


def _frame(event: str, data: Any, event_id: str | None = None) -> str:
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


async def event_stream(
    *, workspace_id: str, queue_name: str | None, last_event_id: str | None, max_seconds: float | None = None
) -> AsyncIterator[str]:
    """SSE frames: `connected`, then events as they commit, with heartbeats. Ends only on disconnect (or max_seconds)."""
    poll_s = float(getattr(settings, "SPINDLE_SSE_POLL_S", POLL_S))
    heartbeat_s = float(getattr(settings, "SPINDLE_SSE_HEARTBEAT_S", HEARTBEAT_S))
    lag_ms = int(float(getattr(settings, "SPINDLE_SSE_LAG_S", SSE_LAG_S)) * 1000)
    # Never below where the client is: a resume must not repeat what it already has.
    start = last_event_id or _id_floor(int((timezone.now() - timedelta(milliseconds=lag_ms)).timestamp() * 1000))
    cursor = start
    sent: set[str] = set()
    poll = sync_to_async(_poll)
    yield "retry: 2000\n\n" + _frame("connected", {"queue": queue_name, "last_event_id": last_event_id})
    began = last_write = time.monotonic()
    while True:
        floor = max(start, min(cursor, _id_floor(int(time.time() * 1000) - lag_ms)))
        sent = {i for i in sent if i > floor}
        events = await poll(workspace_id, queue_name, floor, sent)
        if events:
            chunk = []
            for event in events:
                chunk.append(_frame(event["type"], event, event["id"]))
                sent.add(event["id"])
                cursor = max(cursor, event["id"])
            last_write = time.monotonic()
            yield "".join(chunk)
            if len(events) == POLL_BATCH:
                continue  # a backlog: read on without sleeping
        elif time.monotonic() - last_write >= heartbeat_s:
            last_write = time.monotonic()
            yield ": heartbeat\n\n"
        if max_seconds is not None and time.monotonic() - began >= max_seconds:
            return
        await asyncio.sleep(poll_s)


async def sse_response(request: HttpRequest, *, queue_name: str | None) -> HttpResponse:
    try:
        last_event_id = _event_id_param(
            request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"), "Last-Event-ID"
        )
        workspace, state = await sync_to_async(_authenticate)(request, queue_name)
    except ApplicationError as exc:
        response = error_response(exc.code, exc.message, exc.status_code, exc.details)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.details.get("retry_after_s", 60))
        return response
    except drf_exceptions.APIException as exc:
        response = error_response("UNAUTHORIZED", str(exc.detail), 401)
        response["WWW-Authenticate"] = 'Bearer realm="spindle"'
        return response
    max_seconds = getattr(settings, "SPINDLE_SSE_MAX_SECONDS", None)
    response = StreamingHttpResponse(
        event_stream(workspace_id=workspace.id, queue_name=queue_name, last_event_id=last_event_id,
                     max_seconds=max_seconds),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    if state is not None:
        response["X-RateLimit-Limit"] = str(state.limit)
        response["X-RateLimit-Remaining"] = str(state.remaining)
        response["X-RateLimit-Reset"] = str(state.reset)
    return response
