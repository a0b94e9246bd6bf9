"""Spooled's WebSocket: `/api/v1/ws?token=<key or access token>` and `/api/v1/events/ws` (an ASGI app that
config.front hands every WebSocket connection to; it waits on the event loop and holds no thread).

After the handshake the server sends a `Ping` frame, then every job event of the workspace as a `{type, data}`
text frame (spooled.realtime.frames). The client narrows them with `{"cmd": "subscribe", "queue"?, "job_id"?}`
(several subscriptions add up; none means everything), widens them again with `{"cmd": "unsubscribe", ...}` (no
field: drop every subscription) and asks for a `Ping` with `{"cmd": "ping"}`; subscribe and unsubscribe are not
acknowledged, as in Spooled. A command that is not one of these gets an `Error` frame. `?queue=` and `?job_id=`
on the URL subscribe from the start.

The stream is the shared one (jobs.services.streams): a workspace slot of SPINDLE_MAX_STREAMS_PER_WORKSPACE
(over the cap the handshake is refused with 429), a Ping when idle for 15 s, the credential checked again every
SPINDLE_SSE_AUTH_RECHECK_S (no longer valid: an `Error` frame, then close code 4401). A refused handshake answers
the HTTP status with Spooled's error body where the server supports it (uvicorn does), else closes with 1008.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from jobs.services import streams
from spooled.realtime import frames
from spooled.realtime.opening import JOB_ID_RE, QUEUE_FILTER_RE, Refused, open_stream, timing
from spooled.realtime.streams import SocketEvents, Subscription

PATHS = frozenset({"/api/v1/ws", "/api/v1/events/ws"})
MAX_COMMAND_BYTES = 4096
Send = Any


def is_socket_path(path: str) -> bool:
    return path.rstrip("/") in PATHS


def _token(scope: dict[str, Any], query: dict[str, list[str]]) -> str | None:
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


def _subscription(data: dict[str, Any]) -> Subscription | str:
    """The subscription a command names, or why it is refused."""
    queue, job_id = data.get("queue"), data.get("job_id")
    if queue is not None and not (isinstance(queue, str) and QUEUE_FILTER_RE.match(queue)):
        return "Invalid queue filter."
    if job_id is not None and not (isinstance(job_id, str) and JOB_ID_RE.match(job_id)):
        return "Invalid job_id filter."
    return Subscription(queue=queue or None, job_id=job_id or None)


def command(stream: SocketEvents, text: str) -> dict[str, Any] | None:
    """Apply one client command; the frame to answer with, if any."""
    if len(text.encode()) > MAX_COMMAND_BYTES:
        return frames.error(f"Commands are at most {MAX_COMMAND_BYTES} bytes.")
    try:
        data = json.loads(text)
    except ValueError:
        return frames.error('Commands are JSON objects such as {"cmd": "ping"}.')
    cmd = data.get("cmd") if isinstance(data, dict) else None
    if cmd == "ping":
        return frames.ping()
    if cmd not in ("subscribe", "unsubscribe"):
        return frames.error("Unknown command: expected subscribe, unsubscribe or ping.")
    found = _subscription(data)
    if isinstance(found, str):
        return frames.error(found)
    if cmd == "subscribe":
        stream.subscriptions.add(found)
    elif found.queue is None and found.job_id is None:
        stream.subscriptions.clear()
    else:
        stream.subscriptions = {
            s
            for s in stream.subscriptions
            if not (
                (found.queue is None or s.queue == found.queue)
                and (found.job_id is None or s.job_id == found.job_id)
            )
        }
    return None


class _Socket:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()

    async def text(self, text: str) -> None:
        async with self._lock:
            await self._send({"type": "websocket.send", "text": text})

    async def frame(self, frame: dict[str, Any]) -> None:
        await self.text(json.dumps(frame, separators=(",", ":")))

    async def close(self, code: int) -> None:
        async with self._lock:
            await self._send({"type": "websocket.close", "code": code})


async def _reject(scope: dict[str, Any], send: Send, refused: Refused) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps(refused.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refused.retry_after is not None:
            headers.append((b"retry-after", str(refused.retry_after).encode()))
        await send({"type": "websocket.http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def _read(stream: SocketEvents, receive: Any, socket: _Socket) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message["type"] != "websocket.receive":
            continue
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", "replace")
        reply = command(stream, text)
        if reply is not None:
            await socket.frame(reply)


async def _pump(stream: SocketEvents, socket: _Socket) -> None:
    step = streams.db_sync(stream.step)
    await socket.text((await streams.db_sync(stream.opening)()).strip())
    while True:
        text, over, backlog = await step()
        for line in text.splitlines():
            if line.startswith("{"):
                await socket.text(line)
            elif line.startswith(": heartbeat"):
                await socket.frame(frames.ping())
        if over:
            if "event: closed" in text:  # the credential no longer holds
                await socket.frame(frames.error("Unauthorized: the API key or token no longer holds."))
                await socket.close(4401)
            else:
                await socket.close(1000)
            return
        if not backlog:
            await asyncio.sleep(stream.poll_s)


async def serve(scope: dict[str, Any], receive: Any, send: Send) -> None:
    """The ASGI app for one WebSocket connection."""
    if (await receive())["type"] != "websocket.connect":
        return
    if not is_socket_path(scope["path"]):
        await _reject(scope, send, Refused(404, "NOT_FOUND", "No WebSocket here: use /api/v1/ws."))
        return
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    token = _token(scope, query)
    initial = _subscription(
        {"queue": (query.get("queue") or [None])[0], "job_id": (query.get("job_id") or [None])[0]}
    )
    if isinstance(initial, str):
        await _reject(scope, send, Refused(400, "VALIDATION_ERROR", initial))
        return
    try:
        opened = await streams.take_in_thread(lambda: open_stream(token), lambda taken: taken.slot.release())
    except Refused as refused:
        await _reject(scope, send, refused)
        return
    stream = SocketEvents(
        workspace_id=opened.workspace_id, slot=opened.slot, **timing(token or "", opened.workspace_id)
    )
    if initial.queue or initial.job_id:
        stream.subscriptions.add(initial)
    socket = _Socket(send)
    try:
        await send({"type": "websocket.accept"})
        tasks = [
            asyncio.ensure_future(_read(stream, receive, socket)),
            asyncio.ensure_future(_pump(stream, socket)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    except OSError:
        pass  # the client went away mid-send
    finally:
        await asyncio.shield(streams.db_sync(stream.close)())
