"""Opening a Spooled realtime stream (SSE or WebSocket): who asks, whether the workspace has a free stream slot,
and the stream's timing, by the same rules as /v1/events (jobs.services.streams): a workspace holds at most
SPINDLE_MAX_STREAMS_PER_WORKSPACE streams of any kind, one stream counts as one request against the plan's
rate, and every SPINDLE_SSE_AUTH_RECHECK_S the credential is checked again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from config.ratelimit import workspace_rate_consume
from jobs.services import streams
from spooled.realtime.auth import principal_for_token, still_authorized

# Queue names as Spooled's filters accept them (a filter may name a queue that has no job yet).
QUEUE_FILTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
CLOSED = {
    "reason": "UNAUTHORIZED",
    "message": "The credential no longer holds; reconnect to re-authenticate.",
}


class Refused(Exception):
    """A stream that does not open: the status and Spooled's error body."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": {}}


@dataclass
class Opened:
    workspace_id: str
    slot: streams.StreamSlot
    rate: Any


def open_stream(token: str | None, request: HttpRequest | None = None) -> Opened:
    """(In a thread) authenticate and take a stream slot; raises Refused."""
    principal = principal_for_token(token)
    if principal is None:
        raise Refused(401, "UNAUTHORIZED", "Missing, malformed, revoked or unknown API key or token.")
    workspace = principal.workspace
    rate = workspace_rate_consume(request or HttpRequest(), workspace=workspace)
    if rate is not None and rate.limited:
        raise Refused(429, "RATE_LIMITED", "Too many requests.", retry_after=int(rate.retry_after_s) or 1)
    slot = streams.StreamSlot(workspace.id, ttl_s=max(10, int(recheck_s() * 3) + 1))
    if not slot.acquire():
        cap = streams.stream_cap()
        raise Refused(
            429, "RATE_LIMITED", f"This workspace already has {cap} open event streams.", retry_after=5
        )
    return Opened(workspace.id, slot, rate)


def recheck_s() -> float:
    return streams.stream_setting("SPINDLE_SSE_AUTH_RECHECK_S", streams.AUTH_RECHECK_S)


def timing(token: str, workspace_id: str) -> dict[str, Any]:
    """The keyword arguments every stream takes besides its slot: checks, heartbeat (at most 15 s), polls."""
    return {
        "still_authorized": lambda: still_authorized(token, workspace_id),
        "closed": CLOSED,
        "poll_s": streams.stream_setting("SPINDLE_SSE_POLL_S", streams.POLL_S),
        "heartbeat_s": min(15.0, streams.stream_setting("SPINDLE_SSE_HEARTBEAT_S", streams.HEARTBEAT_S)),
        "recheck_s": recheck_s(),
        "max_seconds": streams.stream_setting("SPINDLE_SSE_MAX_SECONDS", 1800.0),
    }
