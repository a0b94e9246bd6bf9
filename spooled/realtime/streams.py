"""Spooled's realtime streams, on the shared stream machinery (jobs.services.streams): the same workspace slots,
auth re-check, heartbeat and outbox reads as /v1/events, with Spooled's frames (spooled.realtime.frames).

- `SpooledEvents`: the workspace's job events (or one queue's) as SSE, for `GET /api/v1/events[?queue=]`.
- `SocketEvents`: the same events as one JSON text per frame, filtered by the socket's subscriptions, for the
  WebSocket (`/api/v1/ws`, `/api/v1/events/ws`).
- `JobStatusStream`: one job's status changes, for `GET /api/v1/events/jobs/{id}`; it ends after the job's
  terminal status (or an `Error` frame when the workspace has no such job), as Spooled's does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jobs.models import Job
from jobs.services.streams import EventStream, Stream
from spooled.realtime import frames
from spooled.states import spooled_state


class SpooledEvents(EventStream):
    def opening(self) -> str:
        # A first comment flushes the headers through buffering proxies; the Ping says the stream is live.
        return "retry: 2000\n: connected\n\n" + frames.sse(frames.ping())

    def render(self, events: list[dict[str, Any]]) -> str:
        parts = []
        for event in events:
            produced = frames.frames_of(event)
            for index, frame in enumerate(produced):
                # The outbox id rides on the event's last frame, so a resume (Last-Event-ID) repeats nothing.
                parts.append(frames.sse(frame, event["id"] if index == len(produced) - 1 else None))
        return "".join(parts)


@dataclass(frozen=True)
class Subscription:
    queue: str | None = None
    job_id: str | None = None

    def matches(self, frame: dict[str, Any]) -> bool:
        data = frame["data"]
        if self.queue is not None and data.get("queue_name") != self.queue:
            return False
        return self.job_id is None or data.get("job_id") == self.job_id


class SocketEvents(EventStream):
    """Frames as JSON lines; none subscribed means every event of the workspace (Spooled's default)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(queue_name=None, last_event_id=None, **kwargs)
        self.subscriptions: set[Subscription] = set()

    def opening(self) -> str:
        return json.dumps(frames.ping()) + "\n"

    def render(self, events: list[dict[str, Any]]) -> str:
        subscriptions = set(self.subscriptions)
        lines = []
        for event in events:
            for frame in frames.frames_of(event):
                if not subscriptions or any(s.matches(frame) for s in subscriptions):
                    lines.append(json.dumps(frame, separators=(",", ":")))
        return "".join(line + "\n" for line in lines)


class JobStatusStream(Stream):
    def __init__(self, *, workspace_id: str, job_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.job_id = job_id
        self.status = ""
        self.finished = False

    def opening(self) -> str:
        return "retry: 2000\n: connected\n\n"

    def poll(self) -> tuple[str, bool]:
        row = (
            Job.objects.filter(id=self.job_id, workspace_id=self.workspace_id)
            .values_list("state", "attempts", "queue__name")
            .first()
        )
        if row is None:
            self.finished = True
            return frames.sse(frames.error("Job not found")), False
        state, attempts, queue_name = row
        status = spooled_state(state, attempts)
        if status == self.status:
            return "", False
        frame = frames.status_change(self.job_id, queue_name, self.status, status, frames.now_iso())
        self.status = status
        self.finished = status in frames.TERMINAL
        return frames.sse(frame), False

    def step(self) -> tuple[str, bool, bool]:
        text, over, backlog = super().step()
        return text, over or self.finished, backlog
