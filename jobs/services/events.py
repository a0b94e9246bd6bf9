"""The outbox writer moved to queues.events (the lowest app that emits events); these names stay importable."""

from __future__ import annotations

from queues.events import (  # noqa: F401
    EVENT_TYPES,
    PendingEvent,
    event_to_dict,
    events_emit,
    events_insert_sql,
    iso,
    json_param,
)
