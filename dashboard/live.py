"""`GET /events` for dashboard pages: a change feed, not a replayable event log.

Pages only need to know *that* something of their workspace changed, to re-fetch the fragment they show, so
this stream sends `event: changed` whenever the workspace's newest outbox event (jobs.Event) moves, at most
once per poll. An event committed late with a smaller id than one already seen is not announced on its own,
which is why every fragment also refreshes every 30 s. (jobs.views.events serves the API's full stream, with
ids, resumption and Bearer re-checks; its stream object authenticates by header, which a browser's
EventSource cannot send, hence this small session-authenticated feed.)

Served by the ASGI process (config.front routes `/events` there): the loop waits without holding a thread.
A feed takes one of the workspace's stream slots (jobs.views.events.StreamSlot), the same cap as API streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest

from jobs.views.events import StreamSlot
from queues.models import Event

from .auth import session_workspace

POLL_S = 1.0
HEARTBEAT_S = 15.0
SESSION_RECHECK_S = 30.0


def newest_event_id(workspace_id: str) -> str | None:
    """The workspace's newest event id (index jobs_event_ws, read backwards: one index entry)."""
    return (
        Event.objects.filter(workspace_id=workspace_id).order_by("-id").values_list("id", flat=True).first()
    )


def _frame(event: str, data: dict[str, object]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def feed_slot(workspace_id: str) -> StreamSlot | None:
    """One of the workspace's stream slots, or None when all are taken (the page then only polls)."""
    slot = StreamSlot(workspace_id, ttl_s=int(SESSION_RECHECK_S * 3) + 1)
    return slot if slot.acquire() else None


async def change_feed(request: HttpRequest, workspace_id: str, slot: StreamSlot) -> AsyncIterator[str]:
    """`connected`, then `changed` when the workspace's newest event moves; `closed` once the session ends."""
    poll_s = float(getattr(settings, "SPINDLE_DASHBOARD_POLL_S", POLL_S))
    newest = sync_to_async(newest_event_id)
    try:
        seen = await newest(workspace_id)
        yield "retry: 2000\n\n" + _frame("connected", {"newest": seen})
        last_write = last_check = time.monotonic()
        while True:
            await asyncio.sleep(poll_s)
            now = time.monotonic()
            if now - last_check >= SESSION_RECHECK_S:
                last_check = now
                # Signing out or revoking the key ends the feed, as it ends the pages.
                workspace = await sync_to_async(session_workspace)(request)
                if workspace is None or workspace.id != workspace_id:
                    yield _frame("closed", {"reason": "signed out"})
                    return
                await sync_to_async(slot.renew)()
            current = await newest(workspace_id)
            if current is not None and current != seen:
                seen = current
                last_write = now
                yield _frame("changed", {"newest": current})
            elif now - last_write >= HEARTBEAT_S:
                last_write = now
                yield ": heartbeat\n\n"
    finally:
        # Also on disconnect (the generator is closed or cancelled): the slot is free at once, not at its TTL.
        await asyncio.shield(sync_to_async(slot.release)())
