"""The two ends of an outcome batch that touch the database: locking the active jobs, and writing the decided
finishes (jobs, executions, events, rollups). A set-based database (config.db `SET_BASED`) does each in one
round trip; otherwise the ORM does it a statement at a time. Both give the same rows and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from config import db
from jobs.models import Execution, Job, JobState
from jobs.services.engine.finish import Finish, Locked
from jobs.services.engine.rows import job_cols_safe, load_job
from jobs.services.stats import StatDelta, stats_record, stats_upsert_sql
from queues.events import PendingEvent, events_emit, events_insert_sql, json_param

# The job fields an outcome writes.
OUTCOME_FIELDS = [
    "state",
    "attempts",
    "deferrals",
    "run_at",
    "result",
    "last_error",
    "finished_at",
    "lease_token",
    "lease_expires_at",
    "worker_id",
    "updated_at",
]
_EXECUTION_FIELDS = ["status", "completed_at", "duration_ms", "http_status", "response_body", "error"]

_LOCK_SQL = """
SELECT j.id, j.lease_token, j.attempts, j.max_attempts, j.deferrals, j.retry_policy, q.retry_policy,
       j.cancel_requested, j.parent_id, j.queue_id, j.workspace_id, q.name, j.execution_id,
       {run_at}, j.started_at, j.created_at
FROM jobs_job j JOIN queues_queue q ON q.id = j.queue_id
WHERE j.id = ANY(string_to_array(%s, ',')) AND j.state = 'active' {scope}
ORDER BY j.id
FOR UPDATE OF j
"""

# The batch's job and execution rows, each as one JSON parameter (see events_insert_sql). JSON null becomes SQL
# NULL, as the ORM stores None. The `id = ANY(array)` repeats the ids so the planner, which cannot see how many
# rows a JSON function returns, looks them up by primary key instead of scanning the table.
_JOBS_SQL = """
UPDATE jobs_job AS t SET
    state = r->>1, attempts = (r->>2)::int, deferrals = (r->>3)::int,
    run_at = coalesce((r->>4)::timestamptz, t.run_at),
    result = CASE WHEN (r->>5)::boolean THEN nullif(r->6, 'null') ELSE t.result END,
    last_error = nullif(r->7, 'null'), finished_at = (r->>8)::timestamptz,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = %s
FROM jsonb_array_elements(%s::jsonb) AS r
WHERE t.id = r->>0 AND t.id = ANY(string_to_array(%s, ','))
"""
_EXECUTIONS_SQL = """
UPDATE jobs_execution AS e SET
    status = r->>1, completed_at = %s, duration_ms = (r->>2)::int, http_status = (r->>3)::int,
    response_body = r->>4, error = nullif(r->5, 'null')
FROM jsonb_array_elements(%s::jsonb) AS r
WHERE e.id = r->>0 AND e.id = ANY(string_to_array(%s, ','))
"""
_READY_SQL = "SELECT EXISTS (SELECT 1 FROM jobs_job WHERE queue_id = %s AND state = 'waiting')"
# A pull worker's outcome names its queue, not the queue's id: scoped by name in the lock itself (no lookup first).
_PULL_SCOPE = " AND q.name = %s AND q.delivery = 'pull'"


@cache
def _lock_sql(scope: str) -> str:
    return _LOCK_SQL.format(scope=scope, run_at=db.backend().clamp_datetime("j.run_at"))


def lock_active(
    ids: list[str], *, workspace_id: str | None, queue_id: str | None, pull_queue: str | None = None
) -> tuple[list[tuple[Any, dict | None]], datetime]:
    """Lock the active jobs among `ids` in pk order (deadlock-free against other batches), each with its retry
    policy, and the database clock. The caller checks lease tokens under this lock, so a job re-leased a moment
    ago by the sweeper and a claimer is fenced off. `pull_queue`: only jobs of the pull queue of that name."""
    if not db.backend().SET_BASED:
        return _lock_active_orm(ids, workspace_id=workspace_id, queue_id=queue_id, pull_queue=pull_queue)
    params: list[Any] = [",".join(ids)]
    scope = ""
    if workspace_id is not None:
        scope = "AND j.workspace_id = %s"
        params.append(workspace_id)
    if queue_id is not None:
        scope += " AND j.queue_id = %s"
        params.append(queue_id)
    if pull_queue is not None:
        scope += _PULL_SCOPE
        params.append(pull_queue)
    # Prepared (planned once per connection), like every statement of the batch's writes below.
    with connection.cursor() as cursor:
        db.execute_prepared(cursor, [(_lock_sql(scope), params), ("SELECT now()", [])])
        rows = [Locked(r) for r in cursor.fetchall()]
        cursor.nextset()
        now = cursor.fetchone()[0]
    return [(r, r.policy) for r in rows], now


def _lock_active_orm(
    ids: list[str], *, workspace_id: str | None, queue_id: str | None, pull_queue: str | None
) -> tuple[list[tuple[Any, dict | None]], datetime]:
    now = db.backend().now()
    qs = Job.objects.filter(id__in=ids, state=JobState.ACTIVE).select_related("queue")
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    if queue_id is not None:
        qs = qs.filter(queue_id=queue_id)
    if pull_queue is not None:
        qs = qs.filter(queue__name=pull_queue, queue__delivery="pull")
    jobs = list(qs.order_by("id").select_for_update(of=("self",)))
    return [(j, j.retry_policy or j.queue.retry_policy) for j in jobs], now


@dataclass
class Batch:
    """A decided outcome batch, ready to write."""

    now: datetime
    finishes: list[Finish]
    events: list[PendingEvent]
    deltas: list[StatDelta]
    ready_queue_id: str | None  # the write also answers whether this queue has ready jobs
    reread_id: str | None = None  # the write also reads this job back (the pull routes answer with it)
    reread: Job | None = None  # ... read here


def write_batch(batch: Batch) -> bool:
    """Write jobs, executions, events and rollups of a batch. Returns whether `ready_queue_id` has ready jobs
    (asked in the same round trip as the writes; False if None)."""
    return _write_set_based(batch) if db.backend().SET_BASED else _write_orm(batch)


def _write_orm(batch: Batch) -> bool:
    """The same writes a statement at a time (SQLite, embedded)."""
    now, finishes = batch.now, batch.finishes
    db.backend().bulk_set(Job, [f.job for f in finishes], OUTCOME_FIELDS)
    executions = [
        Execution(
            id=f.job.execution_id,
            status=f.execution_status,
            completed_at=now,
            duration_ms=f.duration_ms,
            http_status=f.http_status,
            response_body=f.response_body,
            error=f.execution_error,
        )
        for f in finishes
        if f.job.execution_id
    ]
    db.backend().bulk_set(Execution, executions, _EXECUTION_FIELDS)
    events_emit(batch.events, now=now)
    stats_record(deltas=batch.deltas, now=now)
    if batch.reread_id is not None:
        batch.reread = Job.objects.filter(pk=batch.reread_id).first()
    if batch.ready_queue_id is None:
        return False
    return Job.objects.filter(queue_id=batch.ready_queue_id, state=JobState.WAITING).exists()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _finish_parts(now: datetime, finishes: list[Finish]) -> list[tuple[str, list[Any]]]:
    """The job and execution UPDATEs of a batch, each with one JSON parameter."""
    if not finishes:
        return []
    job_rows = [
        [
            j.id,
            str(j.state),
            j.attempts,
            j.deferrals,
            _iso(j.run_at),
            f.set_result,
            j.result,
            j.last_error,
            _iso(j.finished_at),
        ]
        for f in finishes
        for j in (f.job,)
    ]
    parts = [(_JOBS_SQL, [now, json_param(job_rows), ",".join(f.job.id for f in finishes)])]
    exe_rows = [
        [
            f.job.execution_id,
            str(f.execution_status),
            f.duration_ms,
            f.http_status,
            f.response_body,
            f.execution_error,
        ]
        for f in finishes
        if f.job.execution_id
    ]
    if exe_rows:
        parts.append((_EXECUTIONS_SQL, [now, json_param(exe_rows), ",".join(r[0] for r in exe_rows)]))
    return parts


def _write_set_based(batch: Batch) -> bool:
    """Jobs, executions, events and rollups of a batch in one multi-statement round trip."""
    now, ready = batch.now, batch.ready_queue_id
    parts = _finish_parts(now, batch.finishes)
    if batch.events:
        parts.append(events_insert_sql(batch.events, now=now))
    stat = stats_upsert_sql(deltas=batch.deltas, now=now)
    if stat is not None:
        parts.append(stat)
    if ready is not None:
        parts.append((_READY_SQL, [ready]))
    elif batch.reread_id is not None:
        parts.append((_reread_sql(), [batch.reread_id]))
    if not parts:
        return False
    # Each statement prepared on the connection: their planning (~0.6 ms for a one-job batch) is paid once. The
    # PREPAREs a new connection still needs go first; the answer read below is the last statement's.
    parts, prepares = db.backend().prepared(parts)
    with connection.cursor() as cursor:
        cursor.execute(
            ";\n".join([*prepares, *(sql for sql, _ in parts)]), [p for _, ps in parts for p in ps]
        )
        if ready is None and batch.reread_id is None:
            return False
        while cursor.nextset():
            pass
        # The last statement's rows: psycopg leaves the cursor on the final result after nextset() runs out.
        row = cursor.fetchone()
        if ready is None:
            batch.reread = load_job(row) if row is not None else None
            return False
        return bool(row and row[0])


@cache
def _reread_sql() -> str:
    return f"SELECT {job_cols_safe()} FROM jobs_job WHERE id = %s"
