"""The one port `make run` serves: `uvicorn config.front:app`.

REST stays on gunicorn (WSGI: DESIGN.md and PERF.md measured Django 3–7× slower under an ASGI server), which
listens on an internal unix socket (`var/web-$PORT.sock`, or SPINDLE_UPSTREAM). This ASGI app sits in front:

- the event-stream routes (STREAM_PATHS, the one place that names them) go to Django's ASGI application, whose
  async views wait without holding a thread;
- every other request is proxied to gunicorn, bodies streamed both ways, method, path, headers and status kept.

The client's address reaches gunicorn as the last `X-Forwarded-For` entry, which this front appends itself;
config/forwarded.py trusts it only on connections that came through the unix socket, so a client cannot forge
the address that rate limits and the `/metrics` allowlist see. Clients talk to one base URL (API.md).

Production: run this as the edge (or behind nginx/a load balancer), or route STREAM_PATHS to
`uvicorn config.asgi:application` and everything else to gunicorn in the proxy itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from django.conf import settings
from multidict import CIMultiDict
from yarl import URL

from config.asgi import application as django_asgi

logger = logging.getLogger("spindle.front")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Long-lived streams, served here without a thread: the API's event streams and the dashboard's.
STREAM_PATHS = (
    re.compile(r"^/v1/events/?$"),
    re.compile(r"^/v1/queues/[^/]+/events/?$"),
    re.compile(r"^/events/?$"),
)

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# Set here, never passed on: uvicorn already answered `Expect: 100-continue` when the body was read.
FRONT_SETS = frozenset({"x-forwarded-for", "x-forwarded-proto", "expect"})


def is_stream_path(path: str) -> bool:
    return any(pattern.match(path) for pattern in STREAM_PATHS)


def upstream() -> str:
    """SPINDLE_UPSTREAM (`unix:/path` or `http://host:port`), else the Procfile's socket: `var/web-$PORT.sock`
    (one per public port, so two checkouts or test runs side by side never share one)."""
    port = os.environ.get("PORT") or "8000"
    return os.environ.get("SPINDLE_UPSTREAM") or f"unix:{settings.VAR_DIR / f'web-{port}.sock'}"


class Proxy:
    """One pooled aiohttp session to gunicorn for the life of the process."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.base = "http://spindle-web" if target.startswith("unix:") else target.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Keep-alive shorter than gunicorn's (--keep-alive in the Procfile) so a reused connection is one
            # gunicorn still holds open.
            if self.target.startswith("unix:"):
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(
                    path=self.target[5:], limit=100, keepalive_timeout=10
                )
            else:
                connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=10)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # bytes pass through as gunicorn sent them, Content-Encoding included
                # No total: long-poll claims and large bodies take their time.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = CIMultiDict()
        named_hop = set(HOP_BY_HOP)
        for name, value in scope["headers"]:
            if name.lower() == b"connection":
                named_hop.update(v.strip().lower() for v in value.decode("latin-1").split(","))
        forwarded_for = ""
        chunked = False
        length: int | None = None
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            lower = name.lower()
            if lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "x-forwarded-for":
                forwarded_for = value if not forwarded_for else f"{forwarded_for}, {value}"
            if lower in named_hop or lower in FRONT_SETS:
                continue
            if lower == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _error(send, 400, "BAD_REQUEST", "Malformed Content-Length header.")
                    return
            headers.add(name, value)
        client = scope.get("client")
        peer = client[0] if client else ""
        # The last entry is the peer this front saw: the only one config/forwarded.py trusts.
        headers["X-Forwarded-For"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
        headers["X-Forwarded-Proto"] = scope.get("scheme", "http")

        body: Any = None
        if chunked and length is None:
            # Django reads a body by its Content-Length: read a chunked one here (up to the request limit).
            body = await _read_all(receive, int(settings.SPINDLE_MAX_REQUEST_BYTES))
            if body is None:
                await _error(send, 413, "PAYLOAD_TOO_LARGE", "The request body is too large.")
                return
            headers["Content-Length"] = str(len(body))
        elif length:
            body = _stream_body(receive)

        path = scope.get("raw_path") or scope["path"].encode()
        url = self.base + path.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        # A pooled connection gunicorn closed as idle just before reuse fails before gunicorn read anything:
        # retrying is safe when there is no body to replay and the method is idempotent.
        retry = body is None and scope["method"] in ("GET", "HEAD", "OPTIONS")
        started = False
        try:
            for attempt in (1, 2):
                try:
                    async with self.session().request(
                        scope["method"],
                        URL(url, encoded=True),
                        headers=headers,
                        data=body,
                        allow_redirects=False,
                        compress=None,
                        chunked=None,
                    ) as response:
                        out = [
                            (name, value)
                            for name, value in response.raw_headers
                            if name.decode("latin-1").lower() not in HOP_BY_HOP
                        ]
                        started = True
                        await send({"type": "http.response.start", "status": response.status, "headers": out})
                        async for chunk in response.content.iter_any():
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                except aiohttp.ServerDisconnectedError:
                    if started or not retry or attempt == 2:
                        raise
        except _ClientGone:
            return
        except (aiohttp.ClientError, OSError) as exc:
            logger.warning("REST upstream %s did not answer: %s", self.target, exc)
            await _error(
                send,
                503,
                "SERVICE_UNAVAILABLE",
                "The REST process is not answering; try again shortly.",
                retry_after=1,
            )


class _ClientGone(Exception):
    pass


async def _stream_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _read_all(receive: Receive, limit: int) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    async for chunk in _stream_body(receive):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def _error(send: Send, status: int, code: str, message: str, retry_after: int | None = None) -> None:
    """The API's error envelope (config/exceptions.py), for the few answers the front gives itself."""
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    except RuntimeError:  # a response had already started: nothing more can be said on this connection
        pass


proxy = Proxy(upstream())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await proxy.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return  # no websockets here
    if is_stream_path(scope["path"]):
        await django_asgi(scope, receive, send)
    else:
        await proxy(scope, receive, send)
