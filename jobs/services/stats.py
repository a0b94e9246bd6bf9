"""Per-queue per-minute rollups (QueueMinuteStat), written in the same transaction as the outcomes they count.

Metrics and usage read these rows instead of scanning executions (DESIGN.md). One upsert statement per
queue-minute per batch; rows are touched in (queue, minute) order so concurrent batches cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection

from config import db, fastjson
from queues.models import QueueMinuteStat

# A pull worker names its own error types: each key is cut to this length (the collector maps unknown ones).
ERROR_TYPE_MAX = 64

# Upper bounds (ms) of the duration histogram buckets; "inf" catches the rest. p95 is read from these.
HIST_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)
# Upper bounds (ms) of the enqueue-to-start histogram: sub-second dispatch up to an hour of backlog or delay.
START_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000)


def hist_bucket(duration_ms: float, bounds: tuple[int, ...] = HIST_BOUNDS_MS) -> str:
    for bound in bounds:
        if duration_ms <= bound:
            return str(bound)
    return "inf"


def start_ms(
    attempts: int, deferrals: int, started_at: datetime | None, created_at: datetime | None
) -> float | None:
    """Enqueue-to-start (ms) of a job's current attempt if it is the job's very first (attempt 1, never
    deferred): one sample per job, taken when that attempt ends, so the claim paths write nothing more."""
    if attempts != 1 or deferrals or started_at is None or created_at is None:
        return None
    return (started_at - created_at).total_seconds() * 1000


def error_key(error: Any, http_status: int | None) -> str:
    """The `errors` key of an attempt's error: "<type>|<HTTP status>", either part empty when unknown
    (e.g. "connection_error|", "http_error|503"). The status is digits, so the last "|" splits it back."""
    kind = error.get("type") if isinstance(error, dict) else None
    status = "" if http_status is None else str(int(http_status))
    return f"{'' if kind is None else str(kind)[:ERROR_TYPE_MAX]}|{status}"


def error_key_split(key: str) -> tuple[str | None, int | None]:
    """(error type, HTTP status) of an `errors` key (error_key's inverse)."""
    kind, _, status = key.rpartition("|")
    return kind or None, int(status) if status.isdigit() else None


def _add(into: dict[str, int], key: str, n: int = 1) -> None:
    into[key] = into.get(key, 0) + n


@dataclass
class StatDelta:
    queue_id: str
    workspace_id: str
    enqueued: int = 0
    completed: int = 0
    failed: int = 0
    timeout: int = 0
    duration_sum_ms: int = 0
    duration_count: int = 0
    duration_hist: dict[str, int] = field(default_factory=dict)
    start_sum_ms: int = 0
    start_count: int = 0
    start_hist: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add_duration(self, duration_ms: int) -> None:
        duration_ms = max(0, int(duration_ms))
        self.duration_sum_ms += duration_ms
        self.duration_count += 1
        _add(self.duration_hist, hist_bucket(duration_ms))

    def add_start(self, start_ms: float) -> None:
        """One first attempt's enqueue-to-start (bucketed exactly, summed in whole ms)."""
        start_ms = max(0.0, start_ms)
        self.start_sum_ms += round(start_ms)
        self.start_count += 1
        _add(self.start_hist, hist_bucket(start_ms, START_BOUNDS_MS))

    def add_error(self, error: Any, http_status: int | None) -> None:
        _add(self.errors, error_key(error, http_status))

    def add_ended(self, *, error: Any, http_status: int | None, first_start_ms: float | None) -> None:
        """An attempt ended: its error (if any), and its start latency if it was the job's first."""
        if error is not None:
            self.add_error(error, http_status)
        if first_start_ms is not None:
            self.add_start(first_start_ms)

    @property
    def empty(self) -> bool:
        return not (
            self.enqueued
            or self.completed
            or self.failed
            or self.timeout
            or self.duration_count
            or self.start_count
            or self.errors
        )


def _jsonb_add(column: str) -> str:
    """SET clause adding two {key: count} objects key by key (unchanged when the batch adds nothing)."""
    return f"""{column} = CASE WHEN EXCLUDED.{column} = '{{}}'::jsonb THEN s.{column} ELSE (
        SELECT jsonb_object_agg(
            k, coalesce((s.{column}->>k)::bigint, 0) + coalesce((EXCLUDED.{column}->>k)::bigint, 0)
        )
        FROM jsonb_object_keys(s.{column} || EXCLUDED.{column}) AS k
    ) END"""


_PG_UPSERT = f"""
INSERT INTO jobs_queueminutestat AS s
    (workspace_id, queue_id, minute, enqueued, completed, failed, timeout, duration_sum_ms, duration_count,
     duration_hist, start_sum_ms, start_count, start_hist, errors)
SELECT r->>0, r->>1, date_trunc('minute', coalesce(%s, now())), (r->>2)::int, (r->>3)::int, (r->>4)::int,
       (r->>5)::int, (r->>6)::bigint, (r->>7)::int, r->8, (r->>9)::bigint, (r->>10)::int, r->11, r->12
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (queue_id, minute) DO UPDATE SET
    enqueued = s.enqueued + EXCLUDED.enqueued,
    completed = s.completed + EXCLUDED.completed,
    failed = s.failed + EXCLUDED.failed,
    timeout = s.timeout + EXCLUDED.timeout,
    duration_sum_ms = s.duration_sum_ms + EXCLUDED.duration_sum_ms,
    duration_count = s.duration_count + EXCLUDED.duration_count,
    start_sum_ms = s.start_sum_ms + EXCLUDED.start_sum_ms,
    start_count = s.start_count + EXCLUDED.start_count,
    {", ".join(_jsonb_add(c) for c in ("duration_hist", "start_hist", "errors"))}
"""


def stats_upsert_sql(*, deltas: list[StatDelta], now: datetime | None) -> tuple[str, list] | None:
    """PostgreSQL: one upsert for every queue of the batch (rows in queue order, so batches never deadlock).

    `now=None` uses the transaction's `now()`. None when there is nothing to add.
    """
    deltas = sorted((d for d in deltas if not d.empty), key=lambda d: d.queue_id)
    if not deltas:
        return None
    rows = [
        [
            d.workspace_id,
            d.queue_id,
            d.enqueued,
            d.completed,
            d.failed,
            d.timeout,
            d.duration_sum_ms,
            d.duration_count,
            d.duration_hist,
            d.start_sum_ms,
            d.start_count,
            d.start_hist,
            d.errors,
        ]
        for d in deltas
    ]
    return _PG_UPSERT, [now, fastjson.dumps(rows)]


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def stats_record(*, deltas: list[StatDelta], now: datetime) -> None:
    """Add the deltas to their queue's current minute. Call inside the transaction of the change."""
    deltas = sorted((d for d in deltas if not d.empty), key=lambda d: d.queue_id)
    if not deltas:
        return
    if db.backend().SET_BASED:
        stmt = stats_upsert_sql(deltas=deltas, now=now)
        if stmt is not None:
            with connection.cursor() as cursor:
                cursor.execute(*stmt)
        return
    # Row by row (SQLite, embedded): a single writer holds the database, so read-modify-write is race-free.
    minute = _minute(now)
    for d in deltas:
        row, _ = QueueMinuteStat.objects.get_or_create(
            queue_id=d.queue_id, minute=minute, defaults={"workspace_id": d.workspace_id}
        )
        row.enqueued += d.enqueued
        row.completed += d.completed
        row.failed += d.failed
        row.timeout += d.timeout
        row.duration_sum_ms += d.duration_sum_ms
        row.duration_count += d.duration_count
        row.duration_hist = _merged(row.duration_hist, d.duration_hist)
        row.start_sum_ms += d.start_sum_ms
        row.start_count += d.start_count
        row.start_hist = _merged(row.start_hist, d.start_hist)
        row.errors = _merged(row.errors, d.errors)
        row.save()


def _merged(stored: dict[str, int] | None, added: dict[str, int]) -> dict[str, int]:
    merged = dict(stored or {})
    for key, n in added.items():
        _add(merged, key, n)
    return merged
