"""Event streams over the outbox (queues.models.Event), shared by the API's SSE routes (jobs.views.events) and
the dashboard's change feed (dashboard.live): the workspace's stream slots, the poll loop, and how it waits.

A stream is a `Stream` subclass that says what one poll sends (`poll`) and what opens it (`opening`); the base
class adds what every stream does between polls: re-check the credential every `recheck_s` (and renew its
slot), send a comment heartbeat when idle, end after `max_seconds`, free its slot when closed. `async_frames`
runs it under ASGI without holding a thread; `SyncFrames` runs it under WSGI, where it holds a worker thread,
so there streams are admitted per process (`wsgi_stream_admit`) and bounded in time.

Outbox reads and late commits: event ids are taken before their transaction commits, so an event can become
visible after one with a bigger id. `EventStream` therefore re-reads a short window below its cursor (SSE_LAG_S)
and skips the ids already sent in it, instead of a bare "id > last sent".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from queues.events import event_to_dict
from queues.models import Event
from queues.selectors import event_list

logger = logging.getLogger(__name__)

MAX_STREAMS_PER_WORKSPACE = 10
POLL_S = 0.5
HEARTBEAT_S = 15.0
SSE_LAG_S = 2.0
AUTH_RECHECK_S = 30.0
WSGI_MAX_STREAMS = 2
WSGI_STREAM_MAX_S = 60.0
POLL_BATCH = 500
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_wsgi_lock = threading.Lock()
_wsgi_streams = 0
T = TypeVar("T")


def stream_setting(name: str, default: float) -> float:
    """A Django setting if the settings module defines it, else the environment variable, else the default."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    return float(value)


def stream_cap() -> int:
    """Open streams a workspace may hold at once, API and dashboard together."""
    return int(stream_setting("SPINDLE_MAX_STREAMS_PER_WORKSPACE", MAX_STREAMS_PER_WORKSPACE))


def newest_event_id(workspace_id: str) -> str | None:
    """The workspace's newest event id (index jobs_event_ws, read backwards: one index entry)."""
    return (
        Event.objects.filter(workspace_id=workspace_id).order_by("-id").values_list("id", flat=True).first()
    )


def _id_floor(millis: int) -> str:
    """The smallest event id minted at `millis` (ids start with the time, base32)."""
    head = []
    for _ in range(10):
        head.append(_ALPHABET[millis & 31])
        millis >>= 5
    return "evt_" + "".join(reversed(head)) + "0" * 16


def frame(event: str, data: Any, event_id: str | None = None) -> str:
    """One Server-Sent Events message."""
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


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
        self.lock = threading.Lock()

    def _key(self, index: int) -> str:
        return f"spindle:sse-slot:{self.workspace_id}:{index}"

    def acquire(self) -> bool:
        try:
            for index in range(stream_cap()):
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
        # Once, even when the stream's close and an opening view's clean-up both call it.
        with self.lock:
            key, self.key = self.key, None
        if key is not None and cache.get(key) == self.token:
            cache.delete(key)


def db_sync(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`fn` for a stream's database work (sync_to_async), with Django's per-request connection upkeep first.

    A stream outlives the request cycle that tends connections, and a WebSocket has none: its calls share one
    long-lived thread, where a connection the server dropped (a restart, a failover) failed every later call of
    every socket until the process restarted. An unusable or expired connection is now closed, and reopened; never
    one inside a caller's transaction (Django's test client runs a view's calls in the test's own).
    """

    def call(*args: Any, **kwargs: Any) -> T:
        for conn in connections.all(initialized_only=True):
            if not conn.in_atomic_block:
                conn.close_if_unusable_or_obsolete()
        return fn(*args, **kwargs)

    return sync_to_async(call)


async def take_in_thread(take: Callable[[], T], give_back: Callable[[T], None]) -> T:
    """`take()` (e.g. open a stream and its slot) in a thread, from an async view.

    Django cancels a view when its client disconnects. The awaiting coroutine stops at once, but the thread
    cannot: it runs on and takes the slot. Here the cancellation waits for that thread and gives back what it
    took, so a client that leaves while its stream opens holds nothing after it.
    """
    taking = asyncio.ensure_future(db_sync(take)())
    try:
        return await asyncio.shield(taking)
    except asyncio.CancelledError:
        try:
            taken = await taking
        except Exception:  # nothing was taken
            raise asyncio.CancelledError from None
        await db_sync(give_back)(taken)
        raise


class Stream:
    """One open stream: the bookkeeping between polls. Subclasses define `opening` and `poll`."""

    def __init__(
        self,
        *,
        slot: StreamSlot,
        still_authorized: Callable[[], bool],
        closed: dict[str, Any],
        poll_s: float,
        heartbeat_s: float,
        recheck_s: float,
        max_seconds: float | None = None,
    ) -> None:
        self.slot = slot
        self.still_authorized = still_authorized
        self.closed = closed  # the `closed` event's data when the credential no longer holds
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.recheck_s = recheck_s
        self.max_seconds = max_seconds
        self.began = self.last_write = self.last_check = time.monotonic()

    def opening(self) -> str:
        raise NotImplementedError

    def poll(self) -> tuple[str, bool]:
        """(frames of what is new, a backlog remains so poll again at once)."""
        raise NotImplementedError

    def step(self) -> tuple[str, bool, bool]:
        """(text to send, the stream is over, a backlog remains so poll again at once)."""
        now = time.monotonic()
        if now - self.last_check >= self.recheck_s:
            self.last_check = now
            if not self.still_authorized():
                # EventSource reconnects after the close and then gets the refusal itself.
                return frame("closed", self.closed), True, False
            self.slot.renew()
        text, backlog = self.poll()
        if text:
            self.last_write = time.monotonic()
        elif time.monotonic() - self.last_write >= self.heartbeat_s:
            self.last_write = time.monotonic()
            text = ": heartbeat\n\n"
        # Past the maximum duration the stream ends cleanly: EventSource reconnects with Last-Event-ID.
        over = self.max_seconds is not None and time.monotonic() - self.began >= self.max_seconds
        return text, over, backlog

    def close(self) -> None:
        try:
            self.slot.release()
        except Exception:  # the TTL frees the slot anyway
            logger.warning("could not release an event-stream slot", exc_info=True)


class EventStream(Stream):
    """The API's stream: every event of the workspace (or one queue), with ids, resumable by Last-Event-ID."""

    def __init__(
        self, *, workspace_id: str, queue_name: str | None, last_event_id: str | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.queue_name = queue_name
        self.last_event_id = last_event_id
        self.lag_ms = int(stream_setting("SPINDLE_SSE_LAG_S", SSE_LAG_S) * 1000)
        # Never below where the client is: a resume must not repeat what it already has.
        self.start = last_event_id or _id_floor(
            int((timezone.now() - timedelta(milliseconds=self.lag_ms)).timestamp() * 1000)
        )
        self.cursor = self.start
        self.sent: set[str] = set()

    def opening(self) -> str:
        return "retry: 2000\n\n" + frame(
            "connected", {"queue": self.queue_name, "last_event_id": self.last_event_id}
        )

    def poll(self) -> tuple[str, bool]:
        floor = max(self.start, min(self.cursor, _id_floor(int(time.time() * 1000) - self.lag_ms)))
        self.sent = {i for i in self.sent if i > floor}
        qs = event_list(workspace=self.workspace_id, queue_name=self.queue_name, after=floor)
        if self.sent:
            qs = qs.exclude(id__in=list(self.sent))
        events = [event_to_dict(e) for e in qs.order_by("id")[:POLL_BATCH]]
        if not events:
            return "", False
        self.sent.update(event["id"] for event in events)
        self.cursor = max(self.cursor, events[-1]["id"])
        return self.render(events), len(events) == POLL_BATCH

    def render(self, events: list[dict[str, Any]]) -> str:
        """The text sent for new events (other wire formats, such as Spooled's frames, override it)."""
        return "".join(frame(event["type"], event, event["id"]) for event in events)


async def async_frames(stream: Stream) -> AsyncIterator[str]:
    """The stream under ASGI: waits between polls without holding a thread."""
    step = db_sync(stream.step)
    try:
        yield await db_sync(stream.opening)()
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
        await asyncio.shield(db_sync(stream.close)())


class SyncFrames:
    """The stream under WSGI: an iterator whose `close` (called by Django/gunicorn when the response ends, even
    if it was never iterated) frees the workspace slot and this process's stream admission exactly once."""

    def __init__(self, stream: Stream) -> None:
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

    def __iter__(self) -> SyncFrames:
        return self

    def __next__(self) -> str:
        # A client that went away is noticed at the next write (a heartbeat at the latest), then closed.
        try:
            return next(self.frames)
        except StopIteration:
            # The stream ended itself (its maximum duration, a revoked credential): its slots are freed before the
            # server writes the end of the body, so an EventSource that reconnects at once is admitted (freed in
            # `close`, after that end, a quick reconnect got 503).
            self.close()
            raise

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.frames.close()
        self.stream.close()
        wsgi_stream_release()


def wsgi_stream_admit() -> bool:
    """Under WSGI a stream holds a worker thread: admit at most SPINDLE_WSGI_MAX_STREAMS per process."""
    global _wsgi_streams
    cap = int(stream_setting("SPINDLE_WSGI_MAX_STREAMS", WSGI_MAX_STREAMS))
    with _wsgi_lock:
        if _wsgi_streams >= cap:
            return False
        _wsgi_streams += 1
        return True


def wsgi_stream_release() -> None:
    global _wsgi_streams
    with _wsgi_lock:
        _wsgi_streams -= 1
