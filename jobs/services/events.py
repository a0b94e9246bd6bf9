"""The outbox (DESIGN.md invariant 6): event rows written in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from config.ids import new_ids
from jobs.models import Event

EVENT_TYPES = frozenset(
    {
        "job:waiting",
        "job:delayed",
        "job:active",
        "job:progress",
        "job:completed",
        "job:failed",
        "job:dead",
        "job:stalled",
        "job:removed",
        "queue:paused",
        "queue:resumed",
        "queue:drained",
        "schedule:fired",
    }
)


@dataclass(frozen=True)
class PendingEvent:
    workspace_id: str
    type: str
    queue_name: str | None = None
    job_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def events_emit(events: list[PendingEvent], *, now: datetime | None = None) -> None:
    """Insert the events in one multi-row INSERT. Call inside the transaction of the change they record."""
    if not events:
        return
    now = now or timezone.now()
    ids = new_ids("evt", len(events))
    rows = []
    for event_id, ev in zip(ids, events, strict=True):
        if ev.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {ev.type}")
        rows.append(
            Event(
                id=event_id,
                workspace_id=ev.workspace_id,
                type=ev.type,
                queue_name=ev.queue_name,
                job_id=ev.job_id,
                data=ev.data,
                created_at=now,
            )
        )
    Event.objects.bulk_create(rows, batch_size=1000)


def event_to_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "queue": event.queue_name,
        "job_id": event.job_id,
        "data": event.data,
        "created_at": iso(event.created_at),
    }


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, as API.md shows (`2026-01-15T12:00:00Z`, milliseconds kept)."""
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo else value
    text = value.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
