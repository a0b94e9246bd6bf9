"""`GET /v1/events` and `GET /v1/queues/{name}/events`: Server-Sent Events, or a JSON list with `?format=json`.

The stream authenticates with the same Bearer logic as every route, sends a `connected` event, then polls the
outbox (jobs.Event) every ~0.5 s and sends each event with `id:` (its event id), `event:` (its type) and
`data:` (its JSON); a comment heartbeat keeps proxies from closing an idle connection. `Last-Event-ID` resumes
after that event. Every SPINDLE_SSE_AUTH_RECHECK_S (30 s) the credential is checked again: a revoked or rotated
key, or a deleted workspace, ends the stream with an `event: closed`. A workspace holds at most
SPINDLE_MAX_STREAMS_PER_WORKSPACE streams at once (slots in the shared cache); one more is 429 RATE_LIMITED.

Where it runs: under ASGI (config.front, which `make run` serves on PORT, or config.asgi) the stream is an
async generator and holds no thread. Under WSGI (gunicorn hit directly) it would hold a worker thread, so
there it is bounded: at most SPINDLE_WSGI_MAX_STREAMS (2) per process, each ending cleanly after
SPINDLE_WSGI_STREAM_MAX_S (60 s) so EventSource reconnects with Last-Event-ID; more are 503
SERVICE_UNAVAILABLE. The other threads keep serving REST (`/v1/health` included).

Outbox reads and late commits: event ids are taken before their transaction commits, so an event can become
visible after one with a bigger id. Each poll therefore re-reads a short window below the cursor
(SSE_LAG_S) and skips the ids already sent in it, instead of a bare "id > last sent".

`?format=json` (or `Accept: application/json` without `text/event-stream`) is an ordinary DRF view (it also
works under WSGI): oldest first, `after=evt_…`, limit/cursor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
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
from config.exceptions import ApplicationError, BadRequest, RateLimited, ServiceUnavailable, error_response
from config.pagination import paginate
from config.ratelimit import workspace_rate_consume
from queues.events import event_to_dict
from queues.models import Event

logger = logging.getLogger(__name__)

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
        raise BadRequest(
            f"`{field}` must be an event id (evt_…).", details={field: ["Expected an evt_… id."]}
        )
    return raw


def _queue_exists(workspace: Any, name: str) -> None:
    from queues.selectors import queue_get

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
        qs = Event.objects.filter(workspace=workspace)
        if name is not None:
            qs = qs.filter(queue_name=name)  # index jobs_event_ws_queue
        if after:
            qs = qs.filter(id__gt=after)
        page = paginate(
            qs, request.query_params, lambda rows: [event_to_dict(e) for e in rows], newest_first=False
        )
        return Response(page)


# --- the stream ----------------------------------------------------------------------------------------------
# Where a stream runs decides how it may wait (see the module docstring): under ASGI it is an async generator
# that holds no thread; under WSGI (gunicorn hit directly) it holds a worker thread, so there it is bounded by
# a per-process cap and a maximum duration. Both share one poll step (`_Stream.step`).

MAX_STREAMS_PER_WORKSPACE = 10
WSGI_MAX_STREAMS = 2
WSGI_STREAM_MAX_S = 60.0
AUTH_RECHECK_S = 30.0
_wsgi_lock = threading.Lock()
_wsgi_streams = 0


def _setting(name: str, default: float) -> float:
    """A Django setting if the settings module defines it, else the environment variable, else the default."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    return float(value)


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


class StreamSlot:
    """One of the workspace's SPINDLE_MAX_STREAMS_PER_WORKSPACE stream slots, held in the shared cache.

    Slot i is the cache key `…:{workspace}:{i}`, taken with an atomic `add` (Redis SET NX; the database cache
    in the embedded mode), so the cap holds across every web process. A slot has a TTL and the stream renews
    it at each auth re-check: a process that dies without releasing leaks nothing for longer than the TTL.
    """

    def __init__(self, workspace_id: str, *, ttl_s: int) -> None:
        self.workspace_id = workspace_id
        self.ttl_s = ttl_s
        self.token = uuid.uuid4().hex
        self.key: str | None = None

    def _key(self, index: int) -> str:
        return f"spindle:sse-slot:{self.workspace_id}:{index}"

    def acquire(self) -> bool:
        cap = int(_setting("SPINDLE_MAX_STREAMS_PER_WORKSPACE", MAX_STREAMS_PER_WORKSPACE))
        try:
            for index in range(cap):
                if cache.add(self._key(index), self.token, timeout=self.ttl_s):
                    self.key = self._key(index)
                    return True
        except Exception:
            # As the rate limits do (config/ratelimit.py): a cache outage must not become an API outage.
            logger.exception("stream-slot cache unavailable; letting the stream open")
            return True
        return False

    def renew(self) -> None:
        if self.key is None:
            return
        try:
            if cache.get(self.key) == self.token:
                cache.touch(self.key, timeout=self.ttl_s)
            else:
                cache.add(self.key, self.token, timeout=self.ttl_s)  # expired meanwhile: take it back if free
        except Exception:
            logger.warning("could not renew an event-stream slot", exc_info=True)

    def release(self) -> None:
        if self.key is not None and cache.get(self.key) == self.token:
            cache.delete(self.key)
        self.key = None


def _frame(event: str, data: Any, event_id: str | None = None) -> str:
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _poll(workspace_id: str, queue_name: str | None, floor: str, sent: set[str]) -> list[dict[str, Any]]:
    qs = Event.objects.filter(workspace_id=workspace_id, id__gt=floor)
    if queue_name is not None:
        qs = qs.filter(queue_name=queue_name)
    if sent:
        qs = qs.exclude(id__in=list(sent))
    return [event_to_dict(e) for e in qs.order_by("id")[:POLL_BATCH]]


class _Stream:
    """One stream's state; `step` is one synchronous poll (database and cache), shared by both servers."""

    def __init__(
        self,
        *,
        request: HttpRequest,
        workspace_id: str,
        queue_name: str | None,
        last_event_id: str | None,
        slot: StreamSlot,
        max_seconds: float | None,
    ) -> None:
        self.request = request
        self.workspace_id = workspace_id
        self.queue_name = queue_name
        self.last_event_id = last_event_id
        self.slot = slot
        self.max_seconds = max_seconds
        self.poll_s = _setting("SPINDLE_SSE_POLL_S", POLL_S)
        self.heartbeat_s = _setting("SPINDLE_SSE_HEARTBEAT_S", HEARTBEAT_S)
        self.recheck_s = _setting("SPINDLE_SSE_AUTH_RECHECK_S", AUTH_RECHECK_S)
        self.lag_ms = int(_setting("SPINDLE_SSE_LAG_S", SSE_LAG_S) * 1000)
        # Never below where the client is: a resume must not repeat what it already has.
        self.start = last_event_id or _id_floor(
            int((timezone.now() - timedelta(milliseconds=self.lag_ms)).timestamp() * 1000)
        )
        self.cursor = self.start
        self.sent: set[str] = set()
        self.began = self.last_write = self.last_check = time.monotonic()

    def opening(self) -> str:
        return "retry: 2000\n\n" + _frame(
            "connected", {"queue": self.queue_name, "last_event_id": self.last_event_id}
        )

    def step(self) -> tuple[str, bool, bool]:
        """(text to send, the stream is over, a backlog remains so poll again at once)."""
        now = time.monotonic()
        if now - self.last_check >= self.recheck_s:
            self.last_check = now
            if not _still_authorized(self.request, self.workspace_id):
                # EventSource reconnects after the close and then gets the 401 itself.
                closed = {
                    "reason": "UNAUTHORIZED",
                    "message": "The key or token was revoked or is no longer valid.",
                }
                return _frame("closed", closed), True, False
            self.slot.renew()
        floor = max(self.start, min(self.cursor, _id_floor(int(time.time() * 1000) - self.lag_ms)))
        self.sent = {i for i in self.sent if i > floor}
        events = _poll(self.workspace_id, self.queue_name, floor, self.sent)
        text = ""
        if events:
            text = "".join(_frame(event["type"], event, event["id"]) for event in events)
            self.sent.update(event["id"] for event in events)
            self.cursor = max(self.cursor, events[-1]["id"])
            self.last_write = time.monotonic()
        elif time.monotonic() - self.last_write >= self.heartbeat_s:
            self.last_write = time.monotonic()
            text = ": heartbeat\n\n"
        # Past the maximum duration the stream ends cleanly: EventSource reconnects with Last-Event-ID.
        over = self.max_seconds is not None and time.monotonic() - self.began >= self.max_seconds
        return text, over, len(events) == POLL_BATCH

    def close(self) -> None:
        try:
            self.slot.release()
        except Exception:  # the TTL frees the slot anyway
            logger.warning("could not release an event-stream slot", exc_info=True)


async def _async_frames(stream: _Stream) -> AsyncIterator[str]:
    step = sync_to_async(stream.step)
    try:
        yield stream.opening()
        while True:
            text, over, backlog = await step()
            if text:
                yield text
            if over:
                return
            if not backlog:
                await asyncio.sleep(stream.poll_s)
    finally:
        # Also on disconnect (the generator is closed or cancelled): free the workspace's slot now.
        await asyncio.shield(sync_to_async(stream.close)())


class _SyncFrames:
    """The WSGI stream: an iterator whose `close` (called by Django/gunicorn when the response ends, even if
    it was never iterated) frees the workspace slot and this process's stream slot exactly once."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.frames = self._frames()
        self.closed = False

    def _frames(self) -> Iterator[str]:
        yield self.stream.opening()
        while True:
            text, over, backlog = self.stream.step()
            if text:
                yield text
            if over:
                return
            if not backlog:
                time.sleep(self.stream.poll_s)

    def __iter__(self) -> _SyncFrames:
        return self

    def __next__(self) -> str:
        # A client that went away is noticed at the next write (a heartbeat at the latest), then closed.
        return next(self.frames)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.frames.close()
        self.stream.close()
        _wsgi_stream_release()


def _wsgi_stream_admit() -> bool:
    """Under WSGI a stream holds a worker thread: admit at most SPINDLE_WSGI_MAX_STREAMS per process."""
    global _wsgi_streams
    cap = int(_setting("SPINDLE_WSGI_MAX_STREAMS", WSGI_MAX_STREAMS))
    with _wsgi_lock:
        if _wsgi_streams >= cap:
            return False
        _wsgi_streams += 1
        return True


def _wsgi_stream_release() -> None:
    global _wsgi_streams
    with _wsgi_lock:
        _wsgi_streams -= 1


def _open_stream(request: HttpRequest, queue_name: str | None) -> tuple[Any, Any, StreamSlot]:
    workspace, state = _authenticate(request, queue_name)
    recheck_s = _setting("SPINDLE_SSE_AUTH_RECHECK_S", AUTH_RECHECK_S)
    slot = StreamSlot(workspace.id, ttl_s=max(10, int(recheck_s * 3) + 1))
    if not slot.acquire():
        cap = int(_setting("SPINDLE_MAX_STREAMS_PER_WORKSPACE", MAX_STREAMS_PER_WORKSPACE))
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


async def sse_response(request: HttpRequest, *, queue_name: str | None) -> HttpResponse:
    under_asgi = isinstance(request, ASGIRequest)
    if not under_asgi and not _wsgi_stream_admit():
        return _error(
            ServiceUnavailable(
                "Every event-stream slot of this web process is taken. Serve the stream routes from the ASGI "
                "process (config.front, or config.asgi behind a proxy) to hold streams without threads.",
                details={"retry_after_s": 5},
            )
        )
    admitted = not under_asgi
    try:
        last_event_id = _event_id_param(
            request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"), "Last-Event-ID"
        )
        workspace, state, slot = await sync_to_async(_open_stream)(request, queue_name)
    except (ApplicationError, drf_exceptions.APIException) as exc:
        if admitted:
            _wsgi_stream_release()
        return _error(exc)
    except BaseException:  # e.g. the database is down: the thread slot must not leak with the error
        if admitted:
            _wsgi_stream_release()
        raise
    max_seconds: float | None = getattr(settings, "SPINDLE_SSE_MAX_SECONDS", None)
    if not under_asgi:
        wsgi_max = _setting("SPINDLE_WSGI_STREAM_MAX_S", WSGI_STREAM_MAX_S)
        max_seconds = wsgi_max if max_seconds is None else min(float(max_seconds), wsgi_max)
    stream = _Stream(
        request=request,
        workspace_id=workspace.id,
        queue_name=queue_name,
        last_event_id=last_event_id,
        slot=slot,
        max_seconds=max_seconds,
    )
    frames = _async_frames(stream) if under_asgi else _SyncFrames(stream)
    response = StreamingHttpResponse(frames, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    if state is not None:
        response["X-RateLimit-Limit"] = str(state.limit)
        response["X-RateLimit-Remaining"] = str(state.remaining)
        response["X-RateLimit-Reset"] = str(state.reset)
    return response
