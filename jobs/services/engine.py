"""The job lifecycle engine: claim (leases), outcomes (fenced, batched), the sweeper, backoff.

Every decision about "due" and "expired" uses the database clock (`db_now()`), never the caller's clock.
Hot paths are set-based: one claim takes a batch of rows, one outcome call writes a whole batch.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import DataError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from config.ids import new_ids
from jobs.models import TERMINAL_STATES, Execution, ExecutionStatus, Job, JobState, QueueClaimState
from jobs.services.dispatch import kick_on_commit
from jobs.services.events import PendingEvent, events_emit, events_insert_sql, json_param
from jobs.services.stats import StatDelta, stats_record, stats_upsert_sql
from queues.models import DEFAULT_RETRY_POLICY, Queue

logger = logging.getLogger(__name__)

RESPONSE_BODY_MAX = 64 * 1024
MAX_FREE_DEFERRALS = 10
# The group query looks at this many ready jobs at most, so a huge backlog does not make each claim scan it all.
GROUP_SCAN_WINDOW = 5000
SWEEP_BATCH = 5000
MAX_CLAIM = 10000
# A target's Retry-After defers a job this long at most (delivery.MAX_RETRY_AFTER_S for push).
MAX_DEFERRAL_S = 24 * 3600
# The latest instant the engine computes: PostgreSQL and Python both hold it, with room for any UTC offset.
DATETIME_MAX = datetime(9999, 12, 30, tzinfo=UTC)

OutcomeKind = Literal["success", "failure", "timeout", "deferred", "gone", "cancelled"]
_TERMINAL = [s.value for s in TERMINAL_STATES]


@dataclass
class Outcome:
    job_id: str
    lease_token: str
    kind: OutcomeKind
    result: Any = None
    error: dict | None = None
    http_status: int | None = None
    response_body: str | None = None
    duration_ms: int | None = None
    retry: bool = True
    retry_after_s: float | None = None


def later(now: datetime, *, ms: float) -> datetime:
    """`now` plus `ms`, never past DATETIME_MAX: a timedelta near datetime.max raises OverflowError, which in an
    outcome batch or the sweeper would fail every job of it (issue 9: one bad row must not stop the others)."""
    try:
        return min(now + timedelta(milliseconds=max(0.0, float(ms))), DATETIME_MAX)
    except (OverflowError, ValueError):
        return DATETIME_MAX


def db_now() -> datetime:
    """The database's clock. SQLite (embedded mode) shares the machine's clock with every process."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")
            return cursor.fetchone()[0]
    return timezone.now()


def _atomic():
    # The outermost engine transaction is durable so on-commit hints really fire after commit; when a caller
    # already holds a transaction (e.g. a REST view in ATOMIC_REQUESTS style), join it.
    conn = transaction.get_connection()
    return transaction.atomic(durable=not conn.in_atomic_block)


_PG_TYPES = {
    "CharField": "text",
    "TextField": "text",
    "PositiveIntegerField": "bigint",
    "PositiveSmallIntegerField": "bigint",
    "PositiveBigIntegerField": "bigint",
    "SmallIntegerField": "bigint",
    "IntegerField": "bigint",
    "BigIntegerField": "bigint",
    "DateTimeField": "timestamptz",
    "JSONField": "jsonb",
    "BooleanField": "boolean",
}


def bulk_set(model: Any, objs: list[Any], fields: list[str]) -> None:
    """Write `fields` of each object in one statement.

    PostgreSQL: `UPDATE … FROM unnest(arrays)`, linear in the batch. Django's bulk_update builds a CASE per field
    whose ORM resolution is quadratic: ~0.8 s for 100 jobs, which alone capped delivery near 100 jobs/s.
    """
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields, batch_size=500)
        return
    meta = model._meta
    cols: list[tuple[str, str, str]] = [("id", meta.pk.column, "text")]
    for name in fields:
        f = meta.get_field(name)
        cols.append((name, f.column, _PG_TYPES[f.get_internal_type()]))
    arrays: list[list[Any]] = [[] for _ in cols]
    for obj in objs:
        for i, (name, _col, typ) in enumerate(cols):
            value = obj.pk if name == "id" else getattr(obj, name)
            if typ == "jsonb" and value is not None:
                value = json.dumps(value)
            arrays[i].append(value)
    unnest = ", ".join(f"%s::{'text' if typ == 'jsonb' else typ}[]" for _n, _c, typ in cols)
    names = ", ".join(f'"{col}"' for _n, col, _t in cols)
    sets = ", ".join(
        f'"{col}" = v."{col}"' + ("::jsonb" if typ == "jsonb" else "") for _n, col, typ in cols[1:]
    )
    sql = f'UPDATE {meta.db_table} AS t SET {sets} FROM unnest({unnest}) AS v({names}) WHERE t."{meta.pk.column}" = v."{meta.pk.column}"'
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)


# --- backoff -------------------------------------------------------------------------------------------------


def compute_backoff_ms(policy: dict | None, attempt: int) -> int:
    """Delay before the retry that follows `attempt` (1-based), per the retry policy, scaled for tests."""
    policy = {**DEFAULT_RETRY_POLICY, **(policy or {})}
    initial = max(0, int(policy.get("initial_delay_ms") or 0))
    cap = int(policy.get("max_delay_ms") or 0) or None
    if policy.get("backoff") == "fixed":
        delay = float(initial)
    else:
        multiplier = float(policy.get("multiplier") or 2)
        # Bound the exponent: 2**1000 overflows a float long before any cap applies.
        delay = initial * multiplier ** min(max(attempt - 1, 0), 64)
    if cap is not None:
        delay = min(delay, cap)
    jitter = policy.get("jitter")
    if jitter == "full":
        delay = random.uniform(0, delay)
    elif jitter:  # True or "equal": keep at least half the delay so retries never stampede at once
        delay = delay / 2 + random.uniform(0, delay / 2)
    return max(0, int(delay * settings.SPINDLE_BACKOFF_SCALE))


# --- claim ---------------------------------------------------------------------------------------------------


def _lease_ms(lease_ms: int) -> int:
    return max(int(lease_ms), int(settings.SPINDLE_MIN_LEASE_MS))


def _ready_queryset(queue: Queue):
    qs = Job.objects.filter(queue_id=queue.id, state=JobState.WAITING)
    if queue.paused_job_names:
        qs = qs.exclude(name__in=list(queue.paused_job_names))
    return qs


def _group_candidates(queue: Queue, limit: int, last_group: str) -> list[str]:
    """Ready job ids for a queue with group_concurrency: per-group caps, groups interleaved round-robin.

    row_number() per group ranks each group's jobs; taking rank 1 of every group before rank 2 of any is the
    round-robin, and starting after `last_group` (the group served last) rotates who goes first across claims.
    Ungrouped jobs are each their own partition and have no group cap.
    """
    names = list(queue.paused_job_names or [])
    name_clause = ""
    params: list[Any] = [queue.id]
    if names:
        name_clause = f" AND (name IS NULL OR name NOT IN ({', '.join(['%s'] * len(names))}))"
        params += names
    params += [GROUP_SCAN_WINDOW, queue.id, queue.group_concurrency, last_group, limit]
    sql = f"""
        WITH head AS (
            SELECT id, "group" AS grp, priority, run_at FROM jobs_job
            WHERE queue_id = %s AND state = 'waiting'{name_clause}
            ORDER BY priority DESC, run_at, id LIMIT %s
        ), ranked AS (
            SELECT id, grp, priority, run_at,
                   row_number() OVER (PARTITION BY coalesce(grp, id) ORDER BY priority DESC, run_at, id) AS rn
            FROM head
        ), busy AS (
            SELECT "group" AS grp, count(*) AS n FROM jobs_job
            WHERE queue_id = %s AND state = 'active' AND "group" IS NOT NULL GROUP BY "group"
        )
        SELECT r.id FROM ranked r LEFT JOIN busy b ON b.grp = r.grp
        WHERE r.grp IS NULL OR r.rn + coalesce(b.n, 0) <= %s
        ORDER BY r.rn, r.priority DESC, CASE WHEN coalesce(r.grp, '') > %s THEN 0 ELSE 1 END,
                 coalesce(r.grp, ''), r.run_at, r.id
        LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def job_claim(*, queue: Queue, limit: int, lease_ms: int, worker_id: str | None = None) -> list[Job]:
    """Lease up to `limit` ready jobs of a queue, honouring pause, concurrency, group caps and rate limit."""
    if limit <= 0:
        return []
    if connection.vendor == "postgresql":
        fresh, jobs = _claim_pg(queue_id=queue.id, limit=limit, lease_ms=lease_ms, worker_id=worker_id)
        if fresh is None or not fresh.group_concurrency:
            return jobs
    return _claim_orm_guarded(queue=queue, limit=limit, lease_ms=lease_ms, worker_id=worker_id)


def _claim_orm_guarded(*, queue: Queue, limit: int, lease_ms: int, worker_id: str | None = None) -> list[Job]:
    """_claim_orm, surviving a row psycopg cannot load (issue 9): the ORM reads whole rows, so a run_at stored
    before input validation (year 0 in UTC) failed every claim of the queue. Such rows are failed with a clear
    last_error and the claim runs again (its first try rolled back, nothing was leased)."""
    try:
        return _claim_orm(queue=queue, limit=limit, lease_ms=lease_ms, worker_id=worker_id)
    except DataError:
        if not jobs_quarantine_bad_datetimes(queue_id=queue.id):
            raise
    return _claim_orm(queue=queue, limit=limit, lease_ms=lease_ms, worker_id=worker_id)


def job_claim_push(*, queue_id: str, limit: int) -> tuple[Queue | None, list[Job]]:
    """The push task's claim: the queue row (as locked, with its endpoint and secrets) and up to `limit` jobs
    leased for the queue's own `lease_ms`. (None, []) if the queue is gone or is not a push queue."""
    if connection.vendor == "postgresql":
        queue, jobs = _claim_pg(
            queue_id=queue_id, limit=limit, lease_ms=None, worker_id=None, delivery="push"
        )
        if queue is None or not queue.group_concurrency:
            return queue, jobs
    else:
        queue = Queue.objects.filter(pk=queue_id, delivery=Queue.Delivery.PUSH).first()
        if queue is None:
            return None, []
    jobs = _claim_orm_guarded(queue=queue, limit=limit, lease_ms=queue.lease_ms)
    # The claim re-read the queue under its lock; hand back that fresher row, the one the jobs carry.
    return (jobs[0].queue if jobs else queue), jobs


_QUEUE_FIELDS = [f for f in Queue._meta.concrete_fields]
_JOB_FIELDS_ALL = [f for f in Job._meta.concrete_fields]
_QUEUE_COLS = ", ".join(f'"{f.column}"' for f in _QUEUE_FIELDS)
_JOB_COLS = ", ".join(f'"{f.column}"' for f in _JOB_FIELDS_ALL)
# Every datetime the engine reads is held to this range in SQL (issue 9): a run_at stored before input validation
# existed (year 0 in UTC) is a valid timestamptz that psycopg cannot load, and one such row failed the whole
# claim (its batch leased, then lost) or outcome batch it was part of.
DATETIME_MIN_SQL = "'1970-01-01T00:00:00Z'::timestamptz"
DATETIME_MAX_SQL = "'9999-12-30T00:00:00Z'::timestamptz"


def _clamped(column: str) -> str:
    return f"least(greatest({column}, {DATETIME_MIN_SQL}), {DATETIME_MAX_SQL})"


# The claim's output columns: run_at (the only datetime a client writes) clamped.
_JOB_COLS_SAFE = ", ".join(
    f'{_clamped(chr(34) + f.column + chr(34))} AS "{f.column}"' if f.column == "run_at" else f'"{f.column}"'
    for f in _JOB_FIELDS_ALL
)


def _row_loader(model: Any, fields: list[Any]) -> Any:
    """Model instances from raw rows in concrete-field order (JSON columns arrive as text: decoded here)."""
    attnames = [f.attname for f in fields]
    json_idx = [i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"]
    loads = json.loads

    def load(row: tuple) -> Any:
        values = list(row)
        for i in json_idx:
            if values[i] is not None:
                values[i] = loads(values[i])
        return model.from_db("default", attnames, values)

    return load


_load_queue = _row_loader(Queue, _QUEUE_FIELDS)
_load_job = _row_loader(Job, _JOB_FIELDS_ALL)
_JOB_BY_ID_SQL = f"SELECT {_JOB_COLS} FROM jobs_job WHERE id = %s"


def job_get_fast(job_id: str) -> Job | None:
    """A job by primary key without compiling a queryset (the pull routes render the row they just wrote)."""
    if connection.vendor != "postgresql":
        return Job.objects.filter(pk=job_id).first()
    with connection.cursor() as cursor:
        cursor.execute(_JOB_BY_ID_SQL, [job_id])
        row = cursor.fetchone()
    return _load_job(row) if row is not None else None


# The claim in one round trip (PostgreSQL). Statement 1 locks the queue row FOR NO KEY UPDATE: claimers of a
# queue are serialised, so concurrency, group and rate limits are exact across any number of workers, while
# enqueues (whose FK checks take FOR KEY SHARE) are not blocked. Statement 2 runs on a fresh snapshot taken
# after that lock (READ COMMITTED takes one per statement), so it counts the jobs the previous claimer just
# leased and honours a pause committed a moment ago. It picks ready rows SKIP LOCKED (partial index
# jobs_job_ready), leases them, and inserts their executions and `job:active` events, all set-based.
# Both statements are one implicit transaction, or part of the caller's. Queues with group_concurrency take the
# ORM path (_claim_orm) for their round-robin bookkeeping.
_CLAIM_SQL = f"""
SELECT {_QUEUE_COLS} FROM queues_queue WHERE id = %(queue)s::text FOR NO KEY UPDATE;
WITH q AS (
    SELECT id, name, paused_job_names, now() AS now,
           make_interval(secs => greatest(coalesce(%(lease_ms)s::bigint, lease_ms), %(min_lease_ms)s::bigint) / 1000.0) AS lease,
           greatest(0, least(
               %(limit)s::bigint,
               concurrency - (SELECT count(*) FROM jobs_job WHERE queue_id = %(queue)s::text AND state = 'active'),
               CASE WHEN coalesce(rate_limit, 'null'::jsonb) IN ('null'::jsonb, '{{}}'::jsonb) THEN %(limit)s::bigint ELSE
                   coalesce((rate_limit->>'max')::bigint, 0) - (
                       SELECT count(*) FROM jobs_execution WHERE queue_id = %(queue)s::text AND started_at > now()
                           - make_interval(secs => coalesce(nullif((rate_limit->>'per_ms')::float8, 0), 1000) / 1000))
               END
           )) AS available
    FROM queues_queue
    WHERE id = %(queue)s::text AND NOT paused AND group_concurrency IS NULL AND (%(delivery)s::text IS NULL OR delivery = %(delivery)s::text)
), picked AS (
    SELECT j.id, j.priority, j.run_at FROM jobs_job j
    WHERE j.queue_id = %(queue)s::text AND j.state = 'waiting'
      AND (j.name IS NULL OR NOT ((SELECT paused_job_names FROM q) ? j.name))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT coalesce((SELECT available FROM q), 0)
    FOR UPDATE OF j SKIP LOCKED
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, run_at, id) AS rn FROM picked
), ids AS (
    SELECT * FROM unnest(string_to_array(%(exe_ids)s::text, ','), string_to_array(%(evt_ids)s::text, ','))
        WITH ORDINALITY AS x(exe_id, evt_id, rn)
), upd AS (
    UPDATE jobs_job j SET
        state = 'active', attempts = j.attempts + 1, lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = q.now + q.lease, started_at = q.now, worker_id = %(worker)s::text,
        execution_id = ids.exe_id, updated_at = q.now
    FROM numbered n JOIN ids ON ids.rn = n.rn, q
    WHERE j.id = n.id
    RETURNING j.*, ids.evt_id AS evt_id, n.rn AS rn
), exe AS (
    INSERT INTO jobs_execution (id, workspace_id, job_id, queue_id, schedule_id, attempt, status, lease_token,
                                started_at, worker_id, replay_of)
    SELECT execution_id, workspace_id, id, queue_id, schedule_id, attempts, 'running', lease_token, started_at,
           worker_id, replay_of
    FROM upd
), evt AS (
    INSERT INTO jobs_event (id, workspace_id, type, queue_name, job_id, data, created_at)
    SELECT u.evt_id, u.workspace_id, 'job:active', q.name, u.id,
           jsonb_build_object('attempt', u.attempts, 'worker', u.worker_id), q.now
    FROM upd u, q
)
SELECT {_JOB_COLS_SAFE} FROM upd ORDER BY rn
"""


def _claim_pg(
    *, queue_id: str, limit: int, lease_ms: int | None, worker_id: str | None, delivery: str | None = None
) -> tuple[Queue | None, list[Job]]:
    # Ids are minted for the whole limit up front (the SQL pairs them with the rows it leases), so bound it.
    limit = min(int(limit), MAX_CLAIM)
    params = {
        "queue": queue_id,
        "limit": limit,
        "lease_ms": None if lease_ms is None else int(lease_ms),
        "min_lease_ms": int(settings.SPINDLE_MIN_LEASE_MS),
        "worker": worker_id,
        "delivery": delivery,
        "exe_ids": ",".join(new_ids("exe", limit)),
        "evt_ids": ",".join(new_ids("evt", limit)),
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        row = cursor.fetchone()
        cursor.nextset()
        rows = cursor.fetchall()
    if row is None:
        return None, []
    queue = _load_queue(row)
    if delivery is not None and queue.delivery != delivery:
        return None, []
    jobs = [_load_job(r) for r in rows]
    for job in jobs:
        job.queue = queue
    return queue, jobs


def _claim_orm(*, queue: Queue, limit: int, lease_ms: int, worker_id: str | None = None) -> list[Job]:
    """The claim through the ORM: SQLite (embedded), and queues with group_concurrency on PostgreSQL."""
    lease = timedelta(milliseconds=_lease_ms(lease_ms))
    with _atomic():
        # FOR NO KEY UPDATE on the queue row serialises claimers of this queue (so concurrency, group and rate
        # limits are exact across any number of workers) without blocking enqueues, whose FK checks only take
        # FOR KEY SHARE. The row is re-read, so a pause committed a moment ago is honoured.
        queue = Queue.objects.select_for_update(no_key=True).get(pk=queue.pk)
        if queue.paused:
            return []
        now = db_now()
        available = int(limit)
        # Jobs active now, expired leases included until the sweeper rescues them (index jobs_job_active_lease).
        active = Job.objects.filter(queue_id=queue.id, state=JobState.ACTIVE).count()
        available = min(available, queue.concurrency - active)
        if available > 0 and queue.rate_limit:
            window = timedelta(milliseconds=int(queue.rate_limit.get("per_ms") or 1000))
            # Every claim starts one execution: their count in the window is the claim rate
            # (index jobs_exec_queue_started).
            started = Execution.objects.filter(queue_id=queue.id, started_at__gt=now - window).count()
            available = min(available, int(queue.rate_limit.get("max") or 0) - started)
        if available <= 0:
            return []

        claim_state = None
        if queue.group_concurrency:
            claim_state, _ = QueueClaimState.objects.get_or_create(queue_id=queue.id)
            order = _group_candidates(queue, available, claim_state.last_group)
            if not order:
                return []
            # SKIP LOCKED: a row another transaction holds (a cancel, an edit) is left for the next claim.
            locked = {
                j.id: j
                for j in Job.objects.filter(id__in=order, state=JobState.WAITING).select_for_update(
                    skip_locked=True, of=("self",)
                )
            }
            jobs = [locked[i] for i in order if i in locked]
        else:
            # Served by the partial index jobs_job_ready (queue, priority DESC, run_at, id) WHERE state = 'waiting'.
            jobs = list(
                _ready_queryset(queue)
                .order_by("-priority", "run_at", "id")
                .select_for_update(skip_locked=True, of=("self",))[:available]
            )
        if not jobs:
            return []

        expires = now + lease
        exe_ids = new_ids("exe", len(jobs))
        executions = []
        events = []
        for job, exe_id in zip(jobs, exe_ids, strict=True):
            job.state = JobState.ACTIVE
            job.attempts += 1
            job.lease_token = uuid.uuid4().hex
            job.lease_expires_at = expires
            job.started_at = now
            job.worker_id = worker_id
            job.execution_id = exe_id
            job.updated_at = now
            executions.append(
                Execution(
                    id=exe_id,
                    workspace_id=job.workspace_id,
                    job_id=job.id,
                    queue_id=queue.id,
                    schedule_id=job.schedule_id,
                    attempt=job.attempts,
                    status=ExecutionStatus.RUNNING,
                    lease_token=job.lease_token,
                    started_at=now,
                    worker_id=worker_id,
                    replay_of=job.replay_of,
                )
            )
            events.append(
                PendingEvent(
                    workspace_id=job.workspace_id,
                    type="job:active",
                    queue_name=queue.name,
                    job_id=job.id,
                    data={"attempt": job.attempts, "worker": worker_id},
                )
            )
        # One UPDATE for the batch (rows are locked by us, so no state re-check is needed).
        bulk_set(
            Job,
            jobs,
            [
                "state",
                "attempts",
                "lease_token",
                "lease_expires_at",
                "started_at",
                "worker_id",
                "execution_id",
                "updated_at",
            ],
        )
        Execution.objects.bulk_create(executions, batch_size=1000)
        events_emit(events, now=now)
        if claim_state is not None:
            last = next((j.group for j in reversed(jobs) if j.group), None)
            if last is not None:
                QueueClaimState.objects.filter(pk=queue.id).update(last_group=last)
        for job in jobs:
            job.queue = queue
    return jobs


# --- outcomes ------------------------------------------------------------------------------------------------


def _truncate(text: str | None) -> str | None:
    if text is None:
        return None
    if len(text) <= RESPONSE_BODY_MAX:
        return text
    return text.encode("utf-8")[:RESPONSE_BODY_MAX].decode("utf-8", errors="ignore")


@dataclass
class _Finish:
    """What happened to one job, collected so every write of a batch is one statement."""

    job: Any  # a Job, or a _Locked row (PostgreSQL outcome path)
    execution_status: str
    outcome: Outcome | None
    duration_ms: int | None
    timed_out: bool = False
    set_result: bool = False  # only a success writes `result`; other outcomes keep the stored value

    @property
    def queue_name(self) -> str:
        job = self.job
        return job.queue_name if isinstance(job, _Locked) else job.queue.name


class _Locked:
    """The columns of a locked active job that deciding its outcome needs (no model instance on the hot path)."""

    __slots__ = (
        "id",
        "lease_token",
        "attempts",
        "max_attempts",
        "deferrals",
        "policy",
        "cancel_requested",
        "parent_id",
        "queue_id",
        "workspace_id",
        "queue_name",
        "execution_id",
        "state",
        "run_at",
        "result",
        "last_error",
        "finished_at",
        "lease_expires_at",
        "worker_id",
        "updated_at",
    )

    def __init__(self, row: tuple) -> None:
        (
            self.id,
            self.lease_token,
            self.attempts,
            self.max_attempts,
            self.deferrals,
            retry_policy,
            queue_policy,
            self.cancel_requested,
            self.parent_id,
            self.queue_id,
            self.workspace_id,
            self.queue_name,
            self.execution_id,
            self.run_at,
        ) = row
        policy = json.loads(retry_policy) if retry_policy is not None else None
        self.policy = policy or (json.loads(queue_policy) if queue_policy is not None else None)
        self.state = JobState.ACTIVE
        self.result = self.last_error = self.finished_at = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


_LOCK_SQL = """
SELECT j.id, j.lease_token, j.attempts, j.max_attempts, j.deferrals, j.retry_policy, q.retry_policy,
       j.cancel_requested, j.parent_id, j.queue_id, j.workspace_id, q.name, j.execution_id,
       {run_at}
FROM jobs_job j JOIN queues_queue q ON q.id = j.queue_id
WHERE j.id = ANY(string_to_array(%s, ',')) AND j.state = 'active' {scope}
ORDER BY j.id
FOR UPDATE OF j
"""


def jobs_record_outcomes(
    *, outcomes: list[Outcome], workspace_id: str | None = None, queue_id: str | None = None
) -> list[str]:
    """Record a batch of attempt outcomes in one transaction; returns the ids whose lease was lost.
    With `queue_id`, jobs of other queues are treated as lost too (nothing is written for them)."""
    return _record_outcomes(outcomes=outcomes, workspace_id=workspace_id, queue_id=queue_id)[0]


def jobs_deliver_outcomes(*, outcomes: list[Outcome], queue_id: str) -> tuple[list[str], bool]:
    """The push task's outcome write: (lost ids, whether the queue still has ready jobs), one transaction."""
    return _record_outcomes(outcomes=outcomes, ready_queue_id=queue_id)


def _record_outcomes(
    *,
    outcomes: list[Outcome],
    workspace_id: str | None = None,
    ready_queue_id: str | None = None,
    queue_id: str | None = None,
) -> tuple[list[str], bool]:
    """(lost ids, whether `ready_queue_id` still has ready jobs: asked in the same round trip as the writes)."""
    if not outcomes:
        return [], False
    by_id: dict[str, Outcome] = {}
    for o in outcomes:
        by_id[o.job_id] = o
    ready = False
    with _atomic():
        if connection.vendor == "postgresql":
            # Lock in pk order (deadlock-free against other batches); the token check below happens under the
            # lock, so a job re-leased a moment ago by the sweeper and a claimer is fenced off.
            params: list[Any] = [",".join(by_id)]
            scope = ""
            if workspace_id is not None:
                scope = "AND j.workspace_id = %s"
                params.append(workspace_id)
            if queue_id is not None:
                scope += " AND j.queue_id = %s"
                params.append(queue_id)
            with connection.cursor() as cursor:
                cursor.execute(
                    _LOCK_SQL.format(scope=scope, run_at=_clamped("j.run_at")) + "; SELECT now()", params
                )
                rows = [_Locked(r) for r in cursor.fetchall()]
                cursor.nextset()
                now = cursor.fetchone()[0]
            valid = [r for r in rows if r.lease_token == by_id[r.id].lease_token]
            finishes = [_decide(r, by_id[r.id], now, r.policy) for r in valid]
            ready = _apply(now=now, finishes=finishes, ready_queue_id=ready_queue_id)
        else:
            now = db_now()
            qs = Job.objects.filter(id__in=list(by_id), state=JobState.ACTIVE).select_related("queue")
            if workspace_id is not None:
                qs = qs.filter(workspace_id=workspace_id)
            if queue_id is not None:
                qs = qs.filter(queue_id=queue_id)
            jobs = list(qs.order_by("id").select_for_update(of=("self",)))
            valid = [j for j in jobs if j.lease_token == by_id[j.id].lease_token]
            finishes = [_decide(j, by_id[j.id], now, j.retry_policy or j.queue.retry_policy) for j in valid]
            ready = _apply(now=now, finishes=finishes, ready_queue_id=ready_queue_id)
        valid_ids = {f.job.id for f in finishes}
    lost = [o.job_id for o in outcomes if o.job_id not in valid_ids]
    return lost, ready


def _decide(job: Any, o: Outcome, now: datetime, policy: dict | None) -> _Finish:
    """Set the job's new state in memory (a Job, or a _Locked row); the caller writes all of them at once."""
    job.updated_at = now
    job.lease_token = None
    job.lease_expires_at = None
    job.worker_id = None
    if o.kind == "success":
        job.state = JobState.COMPLETED
        job.result = o.result
        job.finished_at = now
        job.last_error = None
        return _Finish(job, ExecutionStatus.SUCCESS, o, o.duration_ms, set_result=True)

    error = o.error or {"message": o.kind, "type": o.kind}
    if o.http_status is not None and "http_status" not in error:
        error = {**error, "http_status": o.http_status}
    job.last_error = error

    if o.kind == "cancelled" or job.cancel_requested:
        job.state = JobState.CANCELLED
        job.finished_at = now
        return _Finish(job, ExecutionStatus.FAILED, o, o.duration_ms)

    if o.kind == "deferred":
        job.deferrals += 1
        # Bounded here too: the outcome may come from a pull worker's report, not only from parse_retry_after.
        delay_s = min(max(0.0, float(o.retry_after_s or 0)), MAX_DEFERRAL_S)
        if job.deferrals <= MAX_FREE_DEFERRALS:
            # 429/503 with Retry-After: the target asked us to wait, so the attempt is given back.
            job.attempts = max(0, job.attempts - 1)
            job.state = JobState.DELAYED
            job.run_at = later(now, ms=delay_s * 1000)
            return _Finish(job, ExecutionStatus.DEFERRED, o, o.duration_ms)
        # From the 11th deferral on it is a failed attempt, waiting at least what the target asked for.
        return _fail_or_retry(job, o, now, policy, ExecutionStatus.FAILED, min_delay_ms=int(delay_s * 1000))

    if o.kind == "gone":
        job.state = JobState.FAILED
        job.finished_at = now
        return _Finish(job, ExecutionStatus.DEAD_LETTER, o, o.duration_ms)

    status = ExecutionStatus.TIMEOUT if o.kind == "timeout" else ExecutionStatus.FAILED
    return _fail_or_retry(job, o, now, policy, status)


def _fail_or_retry(
    job: Any, o: Outcome, now: datetime, policy: dict | None, status: str, *, min_delay_ms: int = 0
) -> _Finish:
    if not o.retry or job.attempts >= job.max_attempts:
        job.state = JobState.FAILED
        job.finished_at = now
        return _Finish(job, ExecutionStatus.DEAD_LETTER, o, o.duration_ms)
    delay_ms = max(compute_backoff_ms(policy, job.attempts), min_delay_ms)
    job.state = JobState.DELAYED
    job.run_at = later(now, ms=delay_ms)
    return _Finish(job, status, o, o.duration_ms)


_JOB_FIELDS = [
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

# PostgreSQL: the batch's job and execution rows, each as one JSON parameter (see events_insert_sql). JSON null
# becomes SQL NULL, as the ORM stores None. The `id = ANY(array)` repeats the ids so the planner, which cannot see
# how many rows a JSON function returns, looks them up by primary key instead of scanning the table.
_PG_JOBS_SQL = """
UPDATE jobs_job AS t SET
    state = r->>1, attempts = (r->>2)::int, deferrals = (r->>3)::int,
    run_at = coalesce((r->>4)::timestamptz, t.run_at),
    result = CASE WHEN (r->>5)::boolean THEN nullif(r->6, 'null') ELSE t.result END,
    last_error = nullif(r->7, 'null'), finished_at = (r->>8)::timestamptz,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = %s
FROM jsonb_array_elements(%s::jsonb) AS r
WHERE t.id = r->>0 AND t.id = ANY(string_to_array(%s, ','))
"""
_PG_EXECUTIONS_SQL = """
UPDATE jobs_execution AS e SET
    status = r->>1, completed_at = %s, duration_ms = (r->>2)::int, http_status = (r->>3)::int,
    response_body = r->>4, error = nullif(r->5, 'null')
FROM jsonb_array_elements(%s::jsonb) AS r
WHERE e.id = r->>0 AND e.id = ANY(string_to_array(%s, ','))
"""


def _apply(*, now: datetime, finishes: list[_Finish], ready_queue_id: str | None = None) -> bool:
    """Write a batch of decided finishes: jobs, executions, events, rollups, flows, hints.

    PostgreSQL: one round trip for all of it. Returns whether `ready_queue_id` has ready jobs (False if None).
    """
    jobs = [f.job for f in finishes]
    events: list[PendingEvent] = []
    stats: dict[tuple[str, str], StatDelta] = {}
    retry_queues: set[str] = set()
    for f in finishes:
        job = f.job
        qname = f.queue_name
        base = {"attempt": job.attempts}
        delta = stats.setdefault(
            (job.queue_id, job.workspace_id), StatDelta(queue_id=job.queue_id, workspace_id=job.workspace_id)
        )
        if job.state == JobState.COMPLETED:
            events.append(PendingEvent(job.workspace_id, "job:completed", qname, job.id, base))
        elif job.state == JobState.FAILED:
            events.append(
                PendingEvent(job.workspace_id, "job:failed", qname, job.id, {**base, "error": job.last_error})
            )
            events.append(
                PendingEvent(job.workspace_id, "job:dead", qname, job.id, {**base, "error": job.last_error})
            )
        elif job.state == JobState.CANCELLED:
            events.append(
                PendingEvent(job.workspace_id, "job:removed", qname, job.id, {**base, "cancelled": True})
            )
        elif job.state == JobState.DELAYED:
            events.append(
                PendingEvent(
                    job.workspace_id,
                    "job:delayed",
                    qname,
                    job.id,
                    {
                        **base,
                        "run_at": job.run_at.isoformat(),
                        "reason": f.execution_status,
                        "error": job.last_error,
                    },
                )
            )
        elif job.state == JobState.WAITING:
            retry_queues.add(job.queue_id)
        # The rollup counts attempts: success -> completed; failed, timeout, dead-letter -> failed.
        if f.execution_status == ExecutionStatus.SUCCESS:
            delta.completed += 1
        elif f.execution_status != ExecutionStatus.DEFERRED:
            delta.failed += 1
        if f.execution_status == ExecutionStatus.TIMEOUT or f.timed_out:
            delta.timeout += 1
        if f.duration_ms is not None and f.execution_status != ExecutionStatus.DEFERRED:
            delta.add_duration(f.duration_ms)

    ready = False
    if connection.vendor == "postgresql":
        ready = _write_pg(
            now=now,
            finishes=finishes,
            events=events,
            deltas=list(stats.values()),
            ready_queue_id=ready_queue_id,
        )
    else:
        if jobs:
            bulk_set(Job, jobs, _JOB_FIELDS)
        executions = [
            Execution(
                id=f.job.execution_id,
                status=f.execution_status,
                completed_at=now,
                duration_ms=f.duration_ms,
                http_status=f.outcome.http_status if f.outcome else None,
                response_body=_truncate(f.outcome.response_body) if f.outcome else None,
                error=None if f.execution_status == ExecutionStatus.SUCCESS else f.job.last_error,
            )
            for f in finishes
            if f.job.execution_id
        ]
        if executions:
            bulk_set(
                Execution,
                executions,
                ["status", "completed_at", "duration_ms", "http_status", "response_body", "error"],
            )
        events_emit(events, now=now)
        stats_record(deltas=list(stats.values()), now=now)
        if ready_queue_id is not None:
            ready = Job.objects.filter(queue_id=ready_queue_id, state=JobState.WAITING).exists()
    jobs_release_parents(now=now, children=[j for j in jobs if j.is_terminal and j.parent_id])
    if retry_queues:
        kick_on_commit(retry_queues)
    return ready


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _write_pg(
    *,
    now: datetime,
    finishes: list[_Finish],
    events: list[PendingEvent],
    deltas: list[StatDelta],
    ready_queue_id: str | None,
) -> bool:
    """Jobs, executions, events and rollups of a batch in one multi-statement round trip."""
    parts: list[tuple[str, list[Any]]] = []
    if finishes:
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
        parts.append((_PG_JOBS_SQL, [now, json_param(job_rows), ",".join(f.job.id for f in finishes)]))
        exe_rows = [
            [
                f.job.execution_id,
                str(f.execution_status),
                f.duration_ms,
                f.outcome.http_status if f.outcome else None,
                _truncate(f.outcome.response_body) if f.outcome else None,
                None if f.execution_status == ExecutionStatus.SUCCESS else f.job.last_error,
            ]
            for f in finishes
            if f.job.execution_id
        ]
        if exe_rows:
            parts.append((_PG_EXECUTIONS_SQL, [now, json_param(exe_rows), ",".join(r[0] for r in exe_rows)]))
    if events:
        parts.append(events_insert_sql(events, now=now))
    stat = stats_upsert_sql(deltas=deltas, now=now)
    if stat is not None:
        parts.append(stat)
    if ready_queue_id is not None:
        parts.append(
            (
                "SELECT EXISTS (SELECT 1 FROM jobs_job WHERE queue_id = %s AND state = 'waiting')",
                [ready_queue_id],
            )
        )
    if not parts:
        return False
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(sql for sql, _ in parts), [p for _, params in parts for p in params])
        if ready_queue_id is None:
            return False
        while cursor.nextset():
            pass
        # The last statement's rows: psycopg leaves the cursor on the final result after nextset() runs out.
        row = cursor.fetchone()
        return bool(row and row[0])


def jobs_release_parents(*, now: datetime, children: list[Any]) -> None:
    """Flows: a parent waiting for children is released (or failed) once all its children are terminal.

    `children` are the jobs (or rows with `parent_id`) that just finished; only their parent ids are read.
    A failed parent may itself be a child further up: walked level by level in a loop, never by recursion, so a
    flow thousands deep cannot hit RecursionError (issue 9).
    """
    level = children
    while level:
        level = _release_level(now=now, children=level)


def _release_level(*, now: datetime, children: list[Any]) -> list[Job]:
    """One level of jobs_release_parents; returns the parents it failed that have a parent of their own."""
    parent_ids = sorted({c.parent_id for c in children})
    if not parent_ids:
        return []
    # Locking the parents serialises the children's transactions: the last one to finish sees every sibling
    # terminal (READ COMMITTED re-reads after the lock wait), so a parent is never left behind.
    parents = list(
        Job.objects.filter(id__in=parent_ids, wait_for_children=True, state=JobState.DELAYED)
        .select_related("queue")
        .order_by("id")
        .select_for_update(of=("self",))
    )
    if not parents:
        return []
    pending = set(
        Job.objects.filter(parent_id__in=[p.id for p in parents])
        .exclude(state__in=_TERMINAL)
        .values_list("parent_id", flat=True)
        .distinct()
    )
    failed = set(
        Job.objects.filter(parent_id__in=[p.id for p in parents], state=JobState.FAILED)
        .values_list("parent_id", flat=True)
        .distinct()
    )
    released, dead, events = [], [], []
    for parent in parents:
        if parent.id in pending:
            continue
        parent.updated_at = now
        if parent.id in failed and not parent.ignore_child_failures:
            parent.state = JobState.FAILED
            parent.finished_at = now
            parent.last_error = {"message": "A child job failed.", "type": "child_failed"}
            dead.append(parent)
            for t in ("job:failed", "job:dead"):
                events.append(
                    PendingEvent(
                        parent.workspace_id, t, parent.queue.name, parent.id, {"reason": "child_failed"}
                    )
                )
        else:
            parent.state = JobState.WAITING
            parent.run_at = now
            released.append(parent)
            events.append(
                PendingEvent(
                    parent.workspace_id,
                    "job:waiting",
                    parent.queue.name,
                    parent.id,
                    {"reason": "children_done"},
                )
            )
    if released or dead:
        bulk_set(Job, released + dead, ["state", "run_at", "finished_at", "last_error", "updated_at"])
        events_emit(events, now=now)
    if released:
        kick_on_commit({p.queue_id for p in released})
    return [p for p in dead if p.parent_id]


# --- sweeper -------------------------------------------------------------------------------------------------


def _promote_due(now: datetime, queue_id: str | None = None) -> tuple[int, set[str]]:
    children = Job.objects.filter(parent_id=OuterRef("pk"))
    # A parent waiting for children is not "due" until it has children and all are terminal.
    blocked = Q(wait_for_children=True) & (~Exists(children) | Exists(children.exclude(state__in=_TERMINAL)))
    # Due delayed jobs (index jobs_job_delayed_due), locked SKIP LOCKED so an outcome batch holding one of
    # them never deadlocks with the sweeper.
    qs = Job.objects.filter(state=JobState.DELAYED, run_at__lte=now)
    if queue_id is not None:
        qs = qs.filter(queue_id=queue_id)
    due = list(
        qs.exclude(blocked)
        .order_by("run_at")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("id", "queue_id", "workspace_id", "queue__name")[:SWEEP_BATCH]
    )
    if not due:
        return 0, set()
    Job.objects.filter(id__in=[d[0] for d in due]).update(state=JobState.WAITING, updated_at=now)
    events_emit(
        [PendingEvent(ws, "job:waiting", qname, jid, {"reason": "due"}) for jid, _q, ws, qname in due],
        now=now,
    )
    return len(due), {d[1] for d in due}


def _rescue_expired(now: datetime, queue_id: str | None = None) -> tuple[int, set[str]]:
    # Expired leases (index jobs_job_active_lease); SKIP LOCKED leaves a job whose outcome is being written.
    qs = Job.objects.filter(state=JobState.ACTIVE, lease_expires_at__lte=now)
    if queue_id is not None:
        qs = qs.filter(queue_id=queue_id)
    jobs = list(
        qs.select_related("queue")
        .order_by("id")
        .select_for_update(skip_locked=True, of=("self",))[:SWEEP_BATCH]
    )
    if not jobs:
        return 0, set()
    finishes = []
    events = []
    for job in jobs:
        events.append(
            PendingEvent(job.workspace_id, "job:stalled", job.queue.name, job.id, {"attempt": job.attempts})
        )
        error = {"message": "The lease expired before the attempt finished.", "type": "lease_expired"}
        job.last_error = error
        job.lease_token = None
        job.lease_expires_at = None
        job.worker_id = None
        job.updated_at = now
        if job.cancel_requested:
            job.state = JobState.CANCELLED
            job.finished_at = now
            finishes.append(_Finish(job, ExecutionStatus.TIMEOUT, None, None))
        elif job.attempts >= job.max_attempts:
            job.state = JobState.FAILED
            job.finished_at = now
            finishes.append(_Finish(job, ExecutionStatus.DEAD_LETTER, None, None))
        else:
            # Straight back to waiting: the worker vanished, the target did not refuse, so no backoff.
            job.state = JobState.WAITING
            finishes.append(_Finish(job, ExecutionStatus.TIMEOUT, None, None))
    events_emit(events, now=now)
    for f in finishes:
        f.timed_out = True
    _apply(now=now, finishes=finishes)
    return len(jobs), {j.queue_id for j in jobs if j.state == JobState.WAITING}


def jobs_sweep() -> dict:
    """Promote due delayed jobs, rescue expired leases, and re-kick every queue with ready jobs.

    One bad row (issue 9: a datetime stored before validation that Python cannot load) must not stop the sweep
    for every tenant: a step that fails is logged, the rows it cannot read are failed with a clear last_error,
    and the step is redone queue by queue, each in its own transaction, so one failing queue leaves the others
    swept.
    """
    promoted = _sweep_step(_promote_due, Q(state=JobState.DELAYED), "run_at")
    rescued = _sweep_step(_rescue_expired, Q(state=JobState.ACTIVE), "lease_expires_at")
    # Hints can be lost (Redis flushed or restarted, a worker killed with the message unacked): every push queue
    # that has ready jobs gets a fresh, de-duplicated hint. One index probe per queue (jobs_job_ready).
    ready = Job.objects.filter(queue_id=OuterRef("pk"), state=JobState.WAITING)
    queue_ids = list(
        Queue.objects.filter(delivery=Queue.Delivery.PUSH, paused=False)
        .filter(Exists(ready))
        .values_list("id", flat=True)
    )
    kick_on_commit(queue_ids)
    return {"promoted": promoted, "rescued": rescued, "kicked": len(queue_ids)}


# Queues the per-queue fallback of a failed sweep step visits at most per sweep.
SWEEP_FALLBACK_QUEUES = 1000


def _sweep_step(step: Any, pending: Q, due_field: str) -> int:
    """Run one sweep step for all queues at once; if that fails, quarantine and redo it queue by queue."""
    try:
        return _sweep_once(step, None)
    except Exception:  # noqa: BLE001 - one bad row or queue must not stop the sweep of every tenant
        logger.exception(
            "sweeper: %s failed; quarantining bad rows and retrying queue by queue", step.__name__
        )
    jobs_quarantine_bad_datetimes()
    with _atomic():
        now = db_now()
        queue_ids = list(
            Job.objects.filter(pending, **{f"{due_field}__lte": now})
            .order_by()
            .values_list("queue_id", flat=True)
            .distinct()[:SWEEP_FALLBACK_QUEUES]
        )
    done = 0
    for queue_id in queue_ids:
        try:
            done += _sweep_once(step, queue_id)
        except Exception:  # noqa: BLE001 - logged; the other queues are still swept
            logger.exception(
                "sweeper: %s failed for queue %s; continuing with the others", step.__name__, queue_id
            )
    return done


def _sweep_once(step: Any, queue_id: str | None) -> int:
    with _atomic():
        now = db_now()
        count, queues = step(now, queue_id)
        kick_on_commit(queues)
    return count


_QUARANTINE_SQL = f"""
WITH bad AS (
    SELECT id FROM jobs_job
    WHERE state IN ('waiting', 'delayed', 'active') AND (%(queue)s::text IS NULL OR queue_id = %(queue)s::text)
      AND (run_at NOT BETWEEN {DATETIME_MIN_SQL} AND {DATETIME_MAX_SQL}
           OR lease_expires_at NOT BETWEEN {DATETIME_MIN_SQL} AND {DATETIME_MAX_SQL})
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), failed AS (
    UPDATE jobs_job j SET
        state = 'failed', finished_at = now(), updated_at = now(), lease_token = NULL, lease_expires_at = NULL,
        worker_id = NULL, run_at = {_clamped("j.run_at")},
        last_error = jsonb_build_object(
            'type', 'invalid_datetime',
            'message', 'The job has a date outside 1970..9999 (stored before input validation existed); '
                       'it was failed so that it cannot stop the engine. Enqueue it again with a valid run_at.')
    FROM bad WHERE j.id = bad.id
    RETURNING j.id, j.execution_id
), exe AS (
    UPDATE jobs_execution e SET status = 'failed', completed_at = now(),
        error = jsonb_build_object('type', 'invalid_datetime', 'message', 'The job was quarantined.')
    FROM failed WHERE e.id = failed.execution_id AND e.status = 'running'
)
SELECT count(*) FROM failed
"""


def jobs_quarantine_bad_datetimes(*, queue_id: str | None = None, limit: int = SWEEP_BATCH) -> int:
    """Fail the unfinished jobs whose run_at or lease expiry lies outside what the engine can load.

    Set-based SQL that never converts the bad values in Python. Not on the hot path: the sweeper calls it only
    after a step failed (the scan has no index for waiting rows).
    """
    if connection.vendor != "postgresql":
        return 0
    try:
        with _atomic(), connection.cursor() as cursor:
            cursor.execute(_QUARANTINE_SQL, {"queue": queue_id, "limit": limit})
            count = int(cursor.fetchone()[0])
    except Exception:  # noqa: BLE001 - the per-queue retry that follows still isolates the failure
        logger.exception("sweeper: quarantine of out-of-range datetimes failed")
        return 0
    if count:
        logger.warning(
            "sweeper: failed %d job(s) with out-of-range datetimes (last_error invalid_datetime)", count
        )
    return count


def queue_ready_count(*, queue_id: str) -> int:
    """Whether more work remains for a queue (bounded count for the re-kick decision)."""
    return Job.objects.filter(queue_id=queue_id, state=JobState.WAITING)[:1].count()


def queue_active_counts(queue_ids: list[str]) -> dict[str, int]:
    rows = (
        Job.objects.filter(queue_id__in=queue_ids, state=JobState.ACTIVE)
        .values("queue_id")
        .annotate(n=Count("id"))
    )
    return {r["queue_id"]: r["n"] for r in rows}
