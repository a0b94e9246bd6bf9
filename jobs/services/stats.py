"""Per-queue per-minute rollups (QueueMinuteStat), written in the same transaction as the outcomes they count.

Metrics and usage read these rows instead of scanning executions (DESIGN.md). One upsert statement per
queue-minute per batch; rows are touched in (queue, minute) order so concurrent batches cannot deadlock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from config import db
from queues.models import QueueMinuteStat

# Upper bounds (ms) of the duration histogram buckets; "inf" catches the rest. p95 is read from these.
HIST_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)


def hist_bucket(duration_ms: int) -> str:
    for bound in HIST_BOUNDS_MS:
        if duration_ms <= bound:
            return str(bound)
    return "inf"


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

    def add_duration(self, duration_ms: int) -> None:
        duration_ms = max(0, int(duration_ms))
        self.duration_sum_ms += duration_ms
        self.duration_count += 1
        key = hist_bucket(duration_ms)
        self.duration_hist[key] = self.duration_hist.get(key, 0) + 1

    @property
    def empty(self) -> bool:
        return not (self.enqueued or self.completed or self.failed or self.timeout or self.duration_count)


_PG_UPSERT = """
INSERT INTO jobs_queueminutestat AS s
    (workspace_id, queue_id, minute, enqueued, completed, failed, timeout, duration_sum_ms, duration_count,
     duration_hist)
SELECT r->>0, r->>1, date_trunc('minute', coalesce(%s, now())), (r->>2)::int, (r->>3)::int, (r->>4)::int,
       (r->>5)::int, (r->>6)::bigint, (r->>7)::int, r->8
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (queue_id, minute) DO UPDATE SET
    enqueued = s.enqueued + EXCLUDED.enqueued,
    completed = s.completed + EXCLUDED.completed,
    failed = s.failed + EXCLUDED.failed,
    timeout = s.timeout + EXCLUDED.timeout,
    duration_sum_ms = s.duration_sum_ms + EXCLUDED.duration_sum_ms,
    duration_count = s.duration_count + EXCLUDED.duration_count,
    duration_hist = (
        SELECT coalesce(jsonb_object_agg(k, coalesce((s.duration_hist->>k)::bigint, 0)
                                            + coalesce((EXCLUDED.duration_hist->>k)::bigint, 0)), '{}'::jsonb)
        FROM jsonb_object_keys(s.duration_hist || EXCLUDED.duration_hist) AS k
    )
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
        ]
        for d in deltas
    ]
    return _PG_UPSERT, [now, json.dumps(rows, separators=(",", ":"))]


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
        hist = dict(row.duration_hist or {})
        for k, v in d.duration_hist.items():
            hist[k] = hist.get(k, 0) + v
        row.enqueued += d.enqueued
        row.completed += d.completed
        row.failed += d.failed
        row.timeout += d.timeout
        row.duration_sum_ms += d.duration_sum_ms
        row.duration_count += d.duration_count
        row.duration_hist = hist
        row.save()
