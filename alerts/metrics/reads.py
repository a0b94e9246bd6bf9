"""The database reads behind `/metrics`: plain rows for the collector, one aggregate query each.

Every query reads live rows or today's rows through an index, never the history retention keeps, and none
reads executions (their count grows with traffic; DESIGN.md: metrics come from the rollup):
- jobs: the live states by their partial indexes (jobs_job_ready, jobs_job_delayed_due, jobs_job_active_lease),
  and the dead-letter queue (state `failed`) by jobs_job_ws_state;
- attempts: today's per-minute rollup (jobs_stat_queue_minute_uniq): outcome counters, the duration and
  enqueue-to-start histograms in one query, the error counts (a JSON object per minute) in another;
- outbound rows: the pending backlog (*_due) and today's rows (*_created).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import BigIntegerField, Count, Min, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from config import db
from jobs.models import Job, JobState, Worker
from jobs.services.stats import HIST_BOUNDS_MS, START_BOUNDS_MS, error_key_split
from queues.models import Queue, QueueMinuteStat

from ..models import AlertNotification, WebhookDelivery

# Rollup histogram keys (jobs.services.stats.hist_bucket), in ascending order, the open bucket last.
DURATION_KEYS = (*(str(b) for b in HIST_BOUNDS_MS), "inf")
START_KEYS = (*(str(b) for b in START_BOUNDS_MS), "inf")


class ObjectKeyText(KeyTextTransform):
    """The text of one key of a JSON object column, the key taken as an object key even when it looks like a
    number: KeyTextTransform reads "5" as array index 5 on both databases, so every rollup bucket ("5", "10"…)
    would read as NULL. Only for a key of the column itself (no nesting)."""

    def as_postgresql(self, compiler, connection):  # type: ignore[no-untyped-def]
        lhs, params = compiler.compile(self.lhs)
        return f"({lhs} ->> %s)", (*params, self.key_name)

    def as_sqlite(self, compiler, connection):  # type: ignore[no-untyped-def]
        lhs, params = compiler.compile(self.lhs)
        return f"JSON_EXTRACT({lhs}, %s)", (*params, "$." + json.dumps(self.key_name))


@dataclass(frozen=True)
class QueueRef:
    workspace_id: str
    name: str


@dataclass(frozen=True)
class LiveCount:
    queue_id: str
    state: str
    count: int
    # Earliest run_at among the rows: for `waiting`, since when the oldest ready job has been due.
    earliest_run_at: datetime | None


def queues() -> dict[str, QueueRef]:
    return {
        q["id"]: QueueRef(q["workspace_id"], q["name"])
        for q in Queue.objects.values("id", "name", "workspace_id")
    }


def live_jobs() -> list[LiveCount]:
    """Live jobs per queue and state: one arm per state, so each is served by its partial index."""
    arms = [
        Job.objects.filter(state=state)
        .values_list("queue_id", "state")
        .annotate(n=Count("id"), earliest=Min("run_at"))
        .order_by()
        for state in (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
    ]
    return [LiveCount(*row) for row in arms[0].union(*arms[1:], all=True)]


def dead_letter_counts(workspace_ids: set[str]) -> dict[str, int]:
    """Jobs in the dead-letter queue (`failed`) per queue id; the index (workspace, state) reads only them."""
    rows = (
        Job.objects.filter(workspace_id__in=sorted(workspace_ids), state=JobState.FAILED)
        .values_list("queue_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return dict(rows)


def minute_totals(queue_ids: list[str], since: datetime) -> list[dict]:
    """Today's rollup per queue: counters, duration sum and count, one sum per duration histogram bucket
    (`h_<key>`), and the same for the first attempts' enqueue-to-start (`ssum`, `scount`, `s_<key>`)."""
    buckets = {f"h_{key}": _bucket_sum("duration_hist", key) for key in DURATION_KEYS}
    buckets.update({f"s_{key}": _bucket_sum("start_hist", key) for key in START_KEYS})
    return list(
        QueueMinuteStat.objects.filter(queue_id__in=queue_ids, minute__gte=since)
        .values("queue_id")
        .annotate(
            enq=Sum("enqueued"),
            ok=Sum("completed"),
            failed=Sum("failed"),
            timeout=Sum("timeout"),
            dsum=Sum("duration_sum_ms"),
            dcount=Sum("duration_count"),
            ssum=Sum("start_sum_ms"),
            scount=Sum("start_count"),
            **buckets,
        )
        .order_by()
    )


def _bucket_sum(column: str, key: str) -> Sum:
    return Sum(Cast(ObjectKeyText(key, column), BigIntegerField()))


# Today's error counts per queue and key, summed over the minutes in SQL: {each} expands a JSON object into
# (key, value) rows (jsonb_each_text / json_each). Index jobs_stat_queue_minute_uniq (queue, minute).
_ERRORS_SQL = """
SELECT s.queue_id, e.key, SUM(CAST(e.value AS BIGINT))
FROM jobs_queueminutestat s, {each} e
WHERE s.queue_id IN ({queues}) AND s.minute >= %s
GROUP BY s.queue_id, e.key
"""


def error_counts(queue_ids: list[str], since: datetime) -> list[tuple[str, str | None, int | None, int]]:
    """(queue id, error type, HTTP status, attempts) of today's attempts that ended with an error."""
    if not queue_ids:
        return []
    sql = _ERRORS_SQL.format(
        each=db.backend().json_object_each_sql("s.errors"), queues=", ".join(["%s"] * len(queue_ids))
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*queue_ids, connection.ops.adapt_datetimefield_value(since)])
        rows = cursor.fetchall()
    return [(queue_id, *error_key_split(key), int(n)) for queue_id, key, n in rows]


def workers() -> list[tuple[str, int]]:
    """Registered pull workers per workspace (silent ones are reaped by the sweeper, so the table stays small)."""
    return list(Worker.objects.values_list("workspace_id").annotate(n=Count("id")).order_by())


def outbound_counts(
    model: type[WebhookDelivery] | type[AlertNotification], since: datetime
) -> dict[str, int]:
    """Per status: the pending backlog (partial index *_due) and the sent or failed rows created today."""
    counts = {"pending": model.objects.filter(status="pending").count()}
    counts.update(
        model.objects.filter(created_at__gte=since)
        .exclude(status="pending")
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return counts
