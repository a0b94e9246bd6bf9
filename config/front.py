"""The one port `make run` serves: `uvicorn config.front:app`, for REST, event streams, the dashboard and the admin.

Spindle parses no HTTP itself (uvicorn does). This ASGI app decides what each request may cost before any
thread is taken (DESIGN.md, "waiting costs a socket, not a thread"):

- the event-stream routes (STREAM_PATHS) go to Django's async views (config.asgi), which wait without a thread;
- every other request has its body read here in full on the event loop, up to SPINDLE_MAX_REQUEST_BYTES and
  within SPINDLE_BODY_READ_TIMEOUT_S, and only then runs in the WSGI application (config.wsgi) on a2wsgi's
  thread pool, with the body in memory. A slow upload holds a socket, never one of the threads.

Bodies being read are capped per process, in count and in bytes held, so unfinished uploads cannot grow memory
without bound. Oversized, late and over-cap requests are answered in the API's error envelope, and an oversized
Content-Length is refused before `100 Continue` is sent. Forwarded headers count only from
SPINDLE_TRUSTED_PROXIES (config/forwarded.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi.wsgi import WSGIMiddleware, build_environ
from django.conf import settings

from config.asgi import application as django_asgi
from config.forwarded import resolve_scope
from config.wsgi import application as django_wsgi

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Long-lived streams, served without a thread: the API's event streams and the dashboard's.
STREAM_PATHS = (
    re.compile(r"^/v1/events/?$"),
    re.compile(r"^/v1/queues/[^/]+/events/?$"),
    re.compile(r"^/events/?$"),
)
# --- Spooled's realtime surface (spooled/realtime) ---------------------------------------------------------
# Its SSE paths are stream routes too, and every WebSocket connection goes to its socket app (`/api/v1/ws`,
# `/api/v1/events/ws`; other paths are refused there). Both wait on the event loop, holding no thread.
from spooled.realtime.socket import serve as spooled_socket  # noqa: E402

STREAM_PATHS += (
    re.compile(r"^/api/v1/events/?$"),
    re.compile(r"^/api/v1/events/jobs/[^/]+/?$"),
)
# ----------------------------------------------------------------------------------------------------------

# Request-line and header sizes past which the request is refused (gunicorn's limits, which `make run` had).
MAX_TARGET_BYTES = 8190
MAX_HEADER_BYTES = 32 * 1024
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def is_stream_path(path: str) -> bool:
    return any(pattern.match(path) for pattern in STREAM_PATHS)


class Refused(Exception):
    """An answer the front gives itself, in the envelope."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class _ClientGone(Exception):
    pass


class Uploads:
    """Bodies being read in this process: at most `max_count` at once, holding at most `max_bytes` together."""

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count, self.max_bytes = max_count, max_bytes
        self.count = 0
        self.held = 0

    def admit(self, expected: int) -> None:
        if self.count >= self.max_count or self.held + expected > self.max_bytes:
            raise Refused(503, "SERVICE_UNAVAILABLE", "Too many uploads in progress; try again shortly.")
        self.count += 1
        self.held += expected

    def grow(self, extra: int) -> None:
        if self.held + extra > self.max_bytes:
            raise Refused(503, "SERVICE_UNAVAILABLE", "Too many uploads in progress; try again shortly.")
        self.held += extra

    def release(self, count: int, held: int) -> None:
        self.count -= count
        self.held -= held


def _content_length(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """(Content-Length, chunked) of a request; uvicorn has already refused conflicting framing."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            if not value.strip().isdigit():
                raise Refused(400, "BAD_REQUEST", "Malformed Content-Length header.")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, chunked


def _check_head(scope: Scope) -> tuple[int | None, bool]:
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    if target > MAX_TARGET_BYTES:
        raise Refused(414, "URI_TOO_LONG", "The request URL is too long.", {"limit_bytes": MAX_TARGET_BYTES})
    if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES:
        raise Refused(
            431, "HEADERS_TOO_LARGE", "The request headers are too large.", {"limit_bytes": MAX_HEADER_BYTES}
        )
    length, chunked = _content_length(scope["headers"])
    limit = int(settings.SPINDLE_MAX_REQUEST_BYTES)
    if length is not None and length > limit:
        # Before the first receive(): uvicorn sends `100 Continue` only when the body is asked for.
        raise Refused(413, "PAYLOAD_TOO_LARGE", "The request body is too large.", {"limit_bytes": limit})
    return length, chunked


class Front:
    def __init__(self) -> None:
        self.wsgi = WsgiBridge(django_wsgi, workers=int(settings.SPINDLE_WSGI_THREADS))
        self.uploads = Uploads(
            int(settings.SPINDLE_UPLOADS_IN_FLIGHT), int(settings.SPINDLE_UPLOAD_BUFFER_BYTES)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await spooled_socket(resolve_scope(scope), receive, send)  # Spooled's realtime (block above)
            return
        if scope["type"] != "http":
            return
        scope = resolve_scope(scope)
        try:
            if scope["method"] == "OPTIONS" and scope["path"] == "*":
                await _json(
                    send,
                    200,
                    {"methods": ALLOWED_METHODS.split(", ")},
                    [(b"allow", ALLOWED_METHODS.encode())],
                )
                return
            length, chunked = _check_head(scope)
            if is_stream_path(scope["path"]):
                await django_asgi(scope, receive, send)
                return
            body = await self.read_body(receive, length, chunked) if (length or chunked) else b""
        except Refused as refused:
            await _error(send, refused)
            return
        except _ClientGone:
            return
        if chunked:
            # Django reads a body by its Content-Length: the body is whole now, so it has one.
            headers = [
                (n, v) for n, v in scope["headers"] if n not in (b"transfer-encoding", b"content-length")
            ]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await self.wsgi.respond(scope, body, send)

    async def read_body(self, receive: Receive, length: int | None, chunked: bool) -> bytes:
        limit = int(settings.SPINDLE_MAX_REQUEST_BYTES)
        reserved = 0 if chunked else int(length or 0)
        self.uploads.admit(reserved)
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(float(settings.SPINDLE_BODY_READ_TIMEOUT_S)):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise Refused(
                            413, "PAYLOAD_TOO_LARGE", "The request body is too large.", {"limit_bytes": limit}
                        )
                    if size > reserved:
                        self.uploads.grow(size - reserved)
                        reserved = size
                    parts.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(parts)
        except TimeoutError:
            raise Refused(408, "REQUEST_TIMEOUT", "The request body did not arrive in time.") from None
        finally:
            self.uploads.release(1, reserved)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _json(send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    except (RuntimeError, OSError):  # the client went away, or a response had already started
        pass


async def _error(send: Send, refused: Refused) -> None:
    """The API's error envelope (config/exceptions.py). The connection closes: an unread body may follow."""
    extra = [(b"connection", b"close")]
    if refused.status == 503:
        extra.append((b"retry-after", b"1"))
    payload = {"error": {"code": refused.code, "message": refused.message, "details": refused.details}}
    await _json(send, refused.status, payload, extra)


# --- the WSGI side ----------------------------------------------------------------------------------------
# a2wsgi's responder makes an asyncio.Queue and a sender task per request, and hands every response message from
# the worker thread to the loop through them. A Django response that is not streaming is complete when the view
# returns, so here the thread returns it whole and the event loop sends it: one hop into the pool and one back,
# no queue, no task. A streaming response is sent message by message from the thread, each send awaited (as in
# a2wsgi, so a slow client holds the thread, not memory). The body arrives already read, in memory.

_Whole = tuple[int, list[tuple[bytes, bytes]], bytes]


class WsgiBridge(WSGIMiddleware):
    """Runs the WSGI app on a pool of `workers` threads for a request whose body has been read in full."""

    async def respond(self, scope: dict[str, Any], body: bytes, send: Send) -> None:
        loop = asyncio.get_running_loop()
        environ = build_environ(scope, io.BytesIO(body))  # type: ignore[arg-type]
        # In the pool thread's own context, not a copy of the loop's (as a2wsgi and asyncio.to_thread do): Django
        # keeps its cache connections in an asgiref Local, which is per context, so a fresh copy per request made
        # a new cache client per request, and the rate limit opened a new Redis connection every time (a third
        # of an enqueue's CPU). A pool thread keeps one context, as a gunicorn thread does.
        whole = await loop.run_in_executor(self.executor, self._call, environ, send, loop)
        if whole is not None:
            status, headers, content = whole
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content, "more_body": False})

    def _call(self, environ: dict[str, Any], send: Send, loop: asyncio.AbstractEventLoop) -> _Whole | None:
        """On a pool thread: the response whole, or None once it has been streamed."""
        started: list[Any] = []
        iterable = self.app(environ, lambda status, headers, exc_info=None: started.extend((status, headers)))
        try:
            if getattr(iterable, "streaming", True):  # an unknown iterable streams, as in a2wsgi
                _stream(iterable, started, send, loop)
                return None
            content = b"".join(iterable)
        finally:
            getattr(iterable, "close", lambda: None)()
        status, headers = _status_headers(started)
        return status, headers, content


def _status_headers(started: list[Any]) -> tuple[int, list[tuple[bytes, bytes]]]:
    status, headers = started[0], started[1]
    encoded = [(n.strip().encode("latin1").lower(), v.strip().encode("latin1")) for n, v in headers]
    return int(status.split(" ", 1)[0]), encoded


def _stream(iterable: Any, started: list[Any], send: Send, loop: asyncio.AbstractEventLoop) -> None:
    """On a pool thread: send a streaming response chunk by chunk, waiting for each send."""

    def put(message: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(send(message), loop).result()

    head_sent = False
    for chunk in iterable:
        if not head_sent:  # start_response may come with the first chunk (a generator's app)
            status, headers = _status_headers(started)
            put({"type": "http.response.start", "status": status, "headers": headers})
            head_sent = True
        put({"type": "http.response.body", "body": chunk, "more_body": True})
    if not head_sent:
        status, headers = _status_headers(started)
        put({"type": "http.response.start", "status": status, "headers": headers})
    put({"type": "http.response.body", "body": b"", "more_body": False})


app = Front()
