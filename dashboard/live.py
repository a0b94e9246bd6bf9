"""`GET /events` for dashboard pages: a change feed, not a replayable event log.

Pages only need to know *what* of their workspace changed, to re-fetch the fragments it affects, so this
stream sends `event: changed` whenever the workspace's newest outbox event (queues.models.Event) moves, at
most once per poll, with the queue, job and kind of each new event (`{"q", "j", "k"}`; past MAX_CHANGES in one
poll only `"all": true`, and a page refreshes everything). An event committed late with a smaller id than one
already seen is not announced on its own, which is why a page without a live feed polls every 30 s. (The API's
stream, jobs.views.events, sends every event with ids, resumption and Bearer re-checks; a browser's
EventSource cannot send that header, hence this small session-authenticated feed.)

A browser holds ONE feed whatever its number of tabs: the pages share it through a SharedWorker
(static/dashboard/live-worker.js; live.js falls back to one leader tab and a BroadcastChannel), so tabs neither
use up the browser's six HTTP/1.1 connections per host nor the workspace's stream slots.

Served by the ASGI process (config.front routes `/events` there): the loop (jobs.services.streams, the same as
the API's) waits without holding a thread. A feed takes one of the workspace's stream slots, the same cap as
API streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from jobs.services.streams import Stream, StreamSlot, async_frames, frame, newest_event_id

from .auth import session_workspace
from .selectors import events_after

POLL_S = 1.0
HEARTBEAT_S = 15.0
SESSION_RECHECK_S = 30.0
MAX_CHANGES = 100


class ChangeFeed(Stream):
    """`connected`, then `changed` (what changed) when the workspace's newest event moves; `closed` once the
    session ends."""

    def __init__(self, *, workspace_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.seen: str | None = None

    def opening(self) -> str:
        self.seen = newest_event_id(self.workspace_id)
        return "retry: 2000\n\n" + frame("connected", {"newest": self.seen})

    def poll(self) -> tuple[str, bool]:
        current = newest_event_id(self.workspace_id)
        if current is None or current == self.seen:
            return "", False
        rows = events_after(workspace_id=self.workspace_id, after=self.seen, limit=MAX_CHANGES + 1)
        self.seen = current
        data: dict[str, Any] = {"newest": current}
        if len(rows) > MAX_CHANGES:
            data["all"] = True
        else:
            # One entry per distinct (queue, job, kind): a burst on one job is one line.
            data["changes"] = [dict(q=q, j=j, k=k) for q, j, k in dict.fromkeys(rows)]
        return frame("changed", data), False


def _signed_in(request: HttpRequest, workspace_id: str) -> bool:
    """Signing out or revoking the key ends the feed, as it ends the pages."""
    workspace = session_workspace(request)
    return workspace is not None and workspace.id == workspace_id


def feed_slot(workspace_id: str) -> StreamSlot | None:
    """One of the workspace's stream slots, or None when all are taken (the page then only polls)."""
    slot = StreamSlot(workspace_id, ttl_s=int(SESSION_RECHECK_S * 3) + 1)
    return slot if slot.acquire() else None


def change_feed(request: HttpRequest, workspace_id: str, slot: StreamSlot) -> AsyncIterator[str]:
    """The feed's frames; closing the iterator (or a disconnect) frees the slot at once, not at its TTL."""
    feed = ChangeFeed(
        workspace_id=workspace_id,
        slot=slot,
        still_authorized=lambda: _signed_in(request, workspace_id),
        closed={"reason": "signed out"},
        poll_s=float(getattr(settings, "SPINDLE_DASHBOARD_POLL_S", POLL_S)),
        heartbeat_s=HEARTBEAT_S,
        recheck_s=SESSION_RECHECK_S,
    )
    return async_frames(feed)
