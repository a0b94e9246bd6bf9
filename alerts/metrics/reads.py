"""The database reads behind `/metrics`: plain rows for the collector, one aggregate query each.

Every query reads live rows or today's rows through an index, never the history retention keeps:
- jobs: the live states by their partial indexes (jobs_job_ready, jobs_job_delayed_due, jobs_job_active_lease),
  and the dead-letter queue (state `failed`) by jobs_job_ws_state;
- attempts: today's per-minute rollup (jobs_stat_queue_minute_uniq), and today's executions by
  jobs_exec_queue_started (queue, started_at) for what the rollup does not hold (start latency, error types);
- outbound rows: the pending backlog (*_due) and today's rows (*_created).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import BigIntegerField, Count, DurationField, F, Min, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from jobs.models import Execution, Job, JobState, Worker
from jobs.services.stats import HIST_BOUNDS_MS
from queues.models import Queue, QueueMinuteStat

from ..models import AlertNotification, WebhookDelivery

# Rollup histogram keys (jobs.services.stats.hist_bucket), in ascending order, the open bucket last.
DURATION_KEYS = (*(str(b) for b in HIST_BOUNDS_MS), "inf")
# Enqueue-to-start bucket bounds (seconds): sub-second dispatch up to an hour of backlog or requested delay.
START_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


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
    """Today's rollup per queue: counters, duration sum and count, and one sum per histogram bucket."""
    buckets = {
        f"h_{key}": Sum(Cast(ObjectKeyText(key, "duration_hist"), BigIntegerField())) for key in DURATION_KEYS
    }
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
            **buckets,
        )
        .order_by()
    )


def start_latency(queue_ids: list[str], since: datetime) -> list[dict]:
    """Enqueue-to-start of the first attempts started today, per queue: a cumulative count per bucket bound
    (`le_<i>` for START_BOUNDS_S[i]), the total and the sum. The rollup has no such column, so this reads
    today's executions (first attempts only) and their jobs by primary key."""
    latency = F("started_at") - F("job__created_at")
    buckets = {
        f"le_{i}": Count("id", filter=Q(started_at__lte=F("job__created_at") + timedelta(seconds=bound)))
        for i, bound in enumerate(START_BOUNDS_S)
    }
    return list(
        Execution.objects.filter(queue_id__in=queue_ids, started_at__gte=since, attempt=1, job__isnull=False)
        .values("queue_id")
        .annotate(total=Count("id"), total_wait=Sum(latency, output_field=DurationField()), **buckets)
        .order_by()
    )


def error_counts(queue_ids: list[str], since: datetime) -> list[tuple[str, str | None, int | None, int]]:
    """(queue id, error type, HTTP status, attempts) of today's attempts that recorded an error."""
    return list(
        Execution.objects.filter(queue_id__in=queue_ids, started_at__gte=since, error__isnull=False)
        .annotate(error_type=KeyTextTransform("type", "error"))
        .values_list("queue_id", "error_type", "http_status")
        .annotate(n=Count("id"))
        .order_by()
    )


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
