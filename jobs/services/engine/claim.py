"""Claiming (DESIGN.md invariant 3): lease a batch of ready jobs of a queue, honouring its pause, per-job-name
pause, concurrency, per-group concurrency (groups served round-robin) and rate limit. Each claim gets a lease
and a fresh lease token; the claim starts one execution row per job and emits `job:active`."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import DataError, connection

from config import db
from config.ids import new_ids
from jobs.models import Execution, ExecutionStatus, Job, JobState, QueueClaimState
from jobs.services.engine.claim_sql import claim_set_based
from jobs.services.engine.common import GROUP_SCAN_WINDOW, atomic, db_now
from jobs.services.engine.quarantine import jobs_quarantine_bad_datetimes
from queues.events import PendingEvent, events_emit
from queues.models import Queue

_LEASED_FIELDS = [
    "state",
    "attempts",
    "lease_token",
    "lease_expires_at",
    "started_at",
    "worker_id",
    "execution_id",
    "updated_at",
]
# What the execution row of a lease copies from its job, once leased; the rest is the execution's own.
_EXECUTION_FROM_JOB = ("workspace_id", "schedule_id", "lease_token", "started_at", "worker_id", "replay_of")


def job_claim(*, queue: Queue, limit: int, lease_ms: int, worker_id: str | None = None) -> list[Job]:
    """Lease up to `limit` ready jobs of a queue, honouring pause, concurrency, group caps and rate limit."""
    if limit <= 0:
        return []
    if db.backend().SET_BASED:
        fresh, jobs, _capped = claim_set_based(
            queue_id=queue.id, limit=limit, lease_ms=lease_ms, worker_id=worker_id
        )
        if fresh is None or not fresh.group_concurrency:
            return jobs
    return _claim_orm_guarded(queue=queue, limit=limit, lease_ms=lease_ms, worker_id=worker_id)


class PushClaim(NamedTuple):
    """A push claim: the queue row as locked, the jobs leased, whether the queue's limits capped it."""

    queue: Queue | None
    jobs: list[Job]
    capped: bool | None


def job_claim_push(*, queue_id: str, limit: int) -> tuple[Queue | None, list[Job]]:
    """The push task's claim: the queue row (as locked, with its endpoint and secrets) and up to `limit` jobs
    leased for the queue's own `lease_ms`. (None, []) if the queue is gone or is not a push queue."""
    claim = job_claim_push_batch(queue_id=queue_id, limit=limit)
    return claim.queue, claim.jobs


def job_claim_push_batch(*, queue_id: str, limit: int) -> PushClaim:
    """job_claim_push, also telling whether the queue's own limits capped the claim (`capped`: True, False, or
    None where the ORM path cannot tell, which its caller must treat as capped)."""
    if db.backend().SET_BASED:
        claim = claim_set_based(
            queue_id=queue_id, limit=limit, lease_ms=None, worker_id=None, delivery="push"
        )
        if claim.queue is None or not claim.queue.group_concurrency:
            return PushClaim(claim.queue, claim.jobs, claim.capped)
        queue = claim.queue
    else:
        queue = Queue.objects.filter(pk=queue_id, delivery=Queue.Delivery.PUSH).first()
        if queue is None:
            return PushClaim(None, [], False)
    jobs = _claim_orm_guarded(queue=queue, limit=limit, lease_ms=queue.lease_ms)
    # The claim re-read the queue under its lock; hand back that fresher row, the one the jobs carry.
    return PushClaim(jobs[0].queue if jobs else queue, jobs, None)


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


def _claim_orm(*, queue: Queue, limit: int, lease_ms: int, worker_id: str | None = None) -> list[Job]:
    """The claim through the ORM: where the database is not set-based (SQLite), and queues with
    group_concurrency everywhere."""
    lease = timedelta(milliseconds=max(int(lease_ms), int(settings.SPINDLE_MIN_LEASE_MS)))
    with atomic():
        # FOR NO KEY UPDATE on the queue row serialises claimers of this queue (so concurrency, group and rate
        # limits are exact across any number of workers) without blocking enqueues, whose FK checks only take
        # FOR KEY SHARE. The row is re-read, so a pause committed a moment ago is honoured.
        queue = Queue.objects.select_for_update(no_key=True).get(pk=queue.pk)
        if queue.paused:
            return []
        now = db_now()
        available = _available(queue, limit=limit, now=now)
        if available <= 0:
            return []
        jobs = _pick_grouped(queue, available) if queue.group_concurrency else _pick(queue, available)
        if not jobs:
            return []
        _lease(jobs, queue=queue, now=now, expires=now + lease, worker_id=worker_id)
        if queue.group_concurrency:
            last = next((j.group for j in reversed(jobs) if j.group), None)
            if last is not None:
                QueueClaimState.objects.filter(pk=queue.id).update(last_group=last)
        for job in jobs:
            job.queue = queue
    return jobs


def _available(queue: Queue, *, limit: int, now: datetime) -> int:
    """How many jobs this claim may lease: the limit, held to the queue's free concurrency and rate budget."""
    # Jobs active now, expired leases included until the sweeper rescues them (index jobs_job_active_lease).
    active = Job.objects.filter(queue_id=queue.id, state=JobState.ACTIVE).count()
    available = min(int(limit), queue.concurrency - active)
    if available > 0 and queue.rate_limit:
        window = timedelta(milliseconds=int(queue.rate_limit.get("per_ms") or 1000))
        # Every claim starts one execution: their count in the window is the claim rate
        # (index jobs_exec_queue_started).
        started = Execution.objects.filter(queue_id=queue.id, started_at__gt=now - window).count()
        available = min(available, int(queue.rate_limit.get("max") or 0) - started)
    return available


def _pick(queue: Queue, available: int) -> list[Job]:
    """Ready jobs by priority then run_at, locked SKIP LOCKED."""
    qs = Job.objects.filter(queue_id=queue.id, state=JobState.WAITING)
    if queue.paused_job_names:
        qs = qs.exclude(name__in=list(queue.paused_job_names))
    # Served by the partial index jobs_job_ready (queue, priority DESC, run_at, id) WHERE state = 'waiting'.
    return list(
        qs.order_by("-priority", "run_at", "id").select_for_update(skip_locked=True, of=("self",))[:available]
    )


def _pick_grouped(queue: Queue, available: int) -> list[Job]:
    """Ready jobs of a queue with group caps, in round-robin order across groups, locked SKIP LOCKED."""
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
    return [locked[i] for i in order if i in locked]


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


def _lease(jobs: list[Job], *, queue: Queue, now: datetime, expires: datetime, worker_id: str | None) -> None:
    """Lease the locked jobs: one UPDATE for the batch (the rows are ours, so no state re-check is needed), one
    execution row per job and their `job:active` events."""
    executions = []
    events = []
    for job, exe_id in zip(jobs, new_ids("exe", len(jobs)), strict=True):
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
                job_id=job.id,
                queue_id=queue.id,
                attempt=job.attempts,
                status=ExecutionStatus.RUNNING,
                **{name: getattr(job, name) for name in _EXECUTION_FROM_JOB},
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
    db.backend().bulk_set(Job, jobs, _LEASED_FIELDS)
    Execution.objects.bulk_create(executions, batch_size=1000)
    events_emit(events, now=now)
