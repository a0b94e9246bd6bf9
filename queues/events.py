"""The outbox (DESIGN.md invariant 6): event rows written in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from config import fastjson
from config.db import backend
from config.ids import new_ids

from .models import Event

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
    if backend().SET_BASED:
        sql, params = events_insert_sql(events, now=now)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    now = now or timezone.now()
    for ev in events:
        _check_type(ev.type)
    # A pending event's fields are the row's columns, by name.
    rows = [
        Event(id=event_id, created_at=now, **vars(ev))
        for event_id, ev in zip(new_ids("evt", len(events)), events, strict=True)
    ]
    Event.objects.bulk_create(rows, batch_size=1000)


def _check_type(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")


def events_insert_sql(events: list[PendingEvent], *, now: datetime | None = None) -> tuple[str, list[Any]]:
    """PostgreSQL: one INSERT for the batch, its rows passed as a single JSON parameter.

    One text parameter instead of 7 per row: building a model instance and client-side quoting every value
    cost more than the database's own work on the delivery hot path. `now=None` stamps the rows with the
    transaction's `now()`, which callers can then fold into a statement of their own.
    """
    ids = new_ids("evt", len(events))
    rows = []
    for event_id, ev in zip(ids, events, strict=True):
        _check_type(ev.type)
        rows.append([event_id, ev.workspace_id, ev.type, ev.queue_name, ev.job_id, ev.data])
    sql = (
        "INSERT INTO jobs_event (id, workspace_id, type, queue_name, job_id, data, created_at) "
        "SELECT r->>0, r->>1, r->>2, r->>3, r->>4, coalesce(nullif(r->5, 'null'), '{}'::jsonb), coalesce(%s, now()) "
        "FROM jsonb_array_elements(%s::jsonb) AS r"
    )
    return sql, [now, json_param(rows)]


def json_param(value: Any) -> str:
    """JSON text for a jsonb parameter. PostgreSQL refuses NUL in jsonb and text, so it is dropped from strings."""
    text = fastjson.dumps(value, default=str)
    if "\\u0000" in text:
        text = fastjson.dumps(_strip_nul(value), default=str)
    return text


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    return shape_of(event, "id type queue=queue_name job_id data created_at")


def shape_of(obj: Any, fields: str, **given: Any) -> dict[str, Any]:
    """A resource's JSON from a one-line field table, in its order: `name` is the attribute of that name,
    `name=attr` another attribute, and a name passed as a keyword takes that value. Datetimes become `iso`."""
    out: dict[str, Any] = {}
    for field_ in fields.split():
        name, _, attr = field_.partition("=")
        value = given[name] if name in given else getattr(obj, attr or name)
        out[name] = iso(value) if isinstance(value, datetime) else value
    return out


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, as API.md shows (`2026-01-15T12:00:00Z`, milliseconds kept)."""
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo else value
    text = value.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
