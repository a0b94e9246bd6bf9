"""Outcomes (DESIGN.md invariants 4 and 5): complete, fail, retry with backoff, defer on Retry-After, all
fenced by the lease token and written as one batch in one transaction."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.models import ExecutionStatus, Job, JobState
from jobs.services.dispatch import kick_on_commit
from jobs.services.engine.backoff import compute_backoff_ms
from jobs.services.engine.common import MAX_DEFERRAL_S, MAX_FREE_DEFERRALS, Outcome, atomic, later
from jobs.services.engine.finish import Finish, first_start_ms
from jobs.services.engine.flows import jobs_release_parents
from jobs.services.engine.writes import Batch, lock_active, write_batch
from jobs.services.stats import StatDelta
from queues.events import PendingEvent

logger = logging.getLogger(__name__)


def jobs_record_outcomes(
    *, outcomes: list[Outcome], workspace_id: str | None = None, queue_id: str | None = None
) -> list[str]:
    """Record a batch of attempt outcomes in one transaction; returns the ids whose lease was lost.
    With `queue_id`, jobs of other queues are treated as lost too (nothing is written for them)."""
    return _record_outcomes(outcomes=outcomes, workspace_id=workspace_id, queue_id=queue_id)[0]


def jobs_record_pull_outcomes(
    *, outcomes: list[Outcome], workspace_id: str, queue_name: str, reread: bool = False
) -> tuple[list[str], Job | None]:
    """A pull worker's outcomes for the workspace's pull queue `queue_name`: (lost ids, the single job as
    written when `reread`). Two statements: the lock (scoped by queue name, no lookup first; it also reads each
    attempt's start, for `duration_ms`) and the writes, the job read back in the same round trip. Jobs of other
    queues or workspaces, or of a push queue, are lost (nothing is written for them)."""
    batch = _record_outcomes(
        outcomes=outcomes,
        workspace_id=workspace_id,
        pull_queue=queue_name,
        reread_id=outcomes[0].job_id if reread and len(outcomes) == 1 else None,
    )
    return batch[0], batch[2]


def jobs_deliver_outcomes(*, outcomes: list[Outcome], queue_id: str) -> tuple[list[str], bool]:
    """The push task's outcome write: (lost ids, whether the queue still has ready jobs), one transaction."""
    return _record_outcomes(outcomes=outcomes, ready_queue_id=queue_id)[:2]


def _elapsed_ms(started_at: datetime | None, now: datetime) -> int | None:
    """An attempt's duration (finished - started, API.md Executions `duration_ms`); never negative on clock skew."""
    if started_at is None:
        return None
    return max(0, int((now - started_at).total_seconds() * 1000))


def _record_outcomes(
    *,
    outcomes: list[Outcome],
    workspace_id: str | None = None,
    ready_queue_id: str | None = None,
    queue_id: str | None = None,
    pull_queue: str | None = None,
    reread_id: str | None = None,
) -> tuple[list[str], bool, Job | None]:
    """(lost ids, whether `ready_queue_id` still has ready jobs, the `reread_id` job as written): the ready
    question and the reread are asked in the same round trip as the writes. With `pull_queue`, an outcome
    without a duration gets the attempt's (from its start to the report)."""
    if not outcomes:
        return [], False, None
    by_id: dict[str, Outcome] = {}
    for o in outcomes:
        by_id[o.job_id] = o
    reported = timezone.now()
    with atomic():
        locked, now = lock_active(
            list(by_id), workspace_id=workspace_id, queue_id=queue_id, pull_queue=pull_queue
        )
        # Fencing: only the current lease token may finish the attempt.
        finishes = []
        for job, policy in locked:
            o = by_id[job.id]
            if job.lease_token != o.lease_token:
                continue
            if pull_queue is not None and o.duration_ms is None:
                # Measured when the worker's report arrives (this process's clock, as before this path read
                # `started_at` in the lock): the transaction's now() is its start, not the report's time.
                o = replace(o, duration_ms=_elapsed_ms(job.started_at, reported))
            finishes.append(decide(job, o, now, policy))
        batch = Batch(now, finishes, [], [], ready_queue_id, reread_id if finishes else None)
        ready = apply(now=now, finishes=finishes, batch=batch)
    valid_ids = {f.job.id for f in finishes}
    lost = [o.job_id for o in outcomes if o.job_id not in valid_ids]
    return lost, ready, batch.reread


def decide(job: Any, o: Outcome, now: datetime, policy: dict | None) -> Finish:
    """Set the job's new state in memory (a Job, or a Locked row); the caller writes all of them at once."""
    start_ms = first_start_ms(job)  # before a deferral gives the attempt back
    finish = _decide(job, o, now, policy)
    finish.start_ms = start_ms
    return finish


def _decide(job: Any, o: Outcome, now: datetime, policy: dict | None) -> Finish:
    job.updated_at = now
    job.lease_token = None
    job.lease_expires_at = None
    job.worker_id = None
    if o.kind == "success":
        job.state = JobState.COMPLETED
        job.result = o.result
        job.finished_at = now
        job.last_error = None
        return Finish(job, ExecutionStatus.SUCCESS, o, o.duration_ms, set_result=True)

    error = o.error or {"message": o.kind, "type": o.kind}
    if o.http_status is not None and "http_status" not in error:
        error = {**error, "http_status": o.http_status}
    job.last_error = error

    if o.kind == "cancelled" or job.cancel_requested:
        job.state = JobState.CANCELLED
        job.finished_at = now
        return Finish(job, ExecutionStatus.FAILED, o, o.duration_ms)
    if o.kind == "deferred":
        return _defer(job, o, now, policy)
    if o.kind == "gone":
        job.state = JobState.FAILED
        job.finished_at = now
        return Finish(job, ExecutionStatus.DEAD_LETTER, o, o.duration_ms)
    status = ExecutionStatus.TIMEOUT if o.kind == "timeout" else ExecutionStatus.FAILED
    return _fail_or_retry(job, o, now, policy, status)


def _defer(job: Any, o: Outcome, now: datetime, policy: dict | None) -> Finish:
    job.deferrals += 1
    # Bounded here too: the outcome may come from a pull worker's report, not only from parse_retry_after.
    delay_s = min(max(0.0, float(o.retry_after_s or 0)), MAX_DEFERRAL_S)
    if job.deferrals <= MAX_FREE_DEFERRALS:
        # 429/503 with Retry-After: the target asked us to wait, so the attempt is given back.
        job.attempts = max(0, job.attempts - 1)
        job.state = JobState.DELAYED
        job.run_at = later(now, ms=delay_s * 1000)
        return Finish(job, ExecutionStatus.DEFERRED, o, o.duration_ms)
    # From the 11th deferral on it is a failed attempt, waiting at least what the target asked for.
    return _fail_or_retry(job, o, now, policy, ExecutionStatus.FAILED, min_delay_ms=int(delay_s * 1000))


def _fail_or_retry(
    job: Any, o: Outcome, now: datetime, policy: dict | None, status: str, *, min_delay_ms: int = 0
) -> Finish:
    if not o.retry or job.attempts >= job.max_attempts:
        job.state = JobState.FAILED
        job.finished_at = now
        return Finish(job, ExecutionStatus.DEAD_LETTER, o, o.duration_ms)
    delay_ms = max(compute_backoff_ms(policy, job.attempts), min_delay_ms)
    job.state = JobState.DELAYED
    job.run_at = later(now, ms=delay_ms)
    return Finish(job, status, o, o.duration_ms)


def apply(*, now: datetime, finishes: list[Finish], batch: Batch | None = None) -> bool:
    """Write a batch of decided finishes: jobs, executions, events, rollups, flows, hints.

    Returns whether the batch's `ready_queue_id` has ready jobs (False if None).
    """
    events: list[PendingEvent] = []
    stats: dict[tuple[str, str], StatDelta] = {}
    for f in finishes:
        job = f.job
        events += _events_of(f)
        delta = stats.setdefault(
            (job.queue_id, job.workspace_id), StatDelta(queue_id=job.queue_id, workspace_id=job.workspace_id)
        )
        _count(delta, f)
    jobs = [f.job for f in finishes]
    retry_queues = {j.queue_id for j in jobs if j.state == JobState.WAITING}
    batch = batch or Batch(now, finishes, [], [], None)
    batch.events, batch.deltas = events, list(stats.values())
    ready = write_batch(batch)
    jobs_release_parents(now=now, children=[j for j in jobs if j.is_terminal and j.parent_id])
    if retry_queues:
        kick_on_commit(retry_queues)
    dead = [_dead_letter_line(f) for f in finishes if f.execution_status == ExecutionStatus.DEAD_LETTER]
    if dead:
        transaction.on_commit(lambda: log_dead_letters(dead))
    return ready


def _dead_letter_line(f: Finish) -> dict[str, Any]:
    """What the operator needs to find a dead-lettered job, taken now: the rows may change after commit."""
    job = f.job
    error = job.last_error if isinstance(job.last_error, dict) else {}
    return {
        "job_id": job.id,
        "queue": f.queue_name,
        "queue_id": job.queue_id,
        "workspace_id": job.workspace_id,
        "attempts": job.attempts,
        "error_type": error.get("type") or "unknown",
    }


def log_dead_letters(lines: list[dict[str, Any]]) -> None:
    """One WARNING per job moved to the DLQ, after commit (nothing is logged for a rolled-back batch)."""
    for line in lines:
        logger.warning(
            "job %(job_id)s dead-lettered: queue=%(queue)s workspace=%(workspace_id)s attempts=%(attempts)s "
            "error_type=%(error_type)s",
            line,
            extra=line,
        )


def _events_of(f: Finish) -> list[PendingEvent]:
    """The events of one finished attempt, by the job's new state (a job back to waiting has none)."""
    job = f.job
    qname = f.queue_name
    base = {"attempt": job.attempts}
    if job.state == JobState.COMPLETED:
        return [PendingEvent(job.workspace_id, "job:completed", qname, job.id, base)]
    if job.state == JobState.FAILED:
        data = {**base, "error": job.last_error}
        return [
            PendingEvent(job.workspace_id, "job:failed", qname, job.id, data),
            PendingEvent(job.workspace_id, "job:dead", qname, job.id, dict(data)),
        ]
    if job.state == JobState.CANCELLED:
        return [PendingEvent(job.workspace_id, "job:removed", qname, job.id, {**base, "cancelled": True})]
    if job.state == JobState.DELAYED:
        data = {
            **base,
            "run_at": job.run_at.isoformat(),
            "reason": f.execution_status,
            "error": job.last_error,
        }
        return [PendingEvent(job.workspace_id, "job:delayed", qname, job.id, data)]
    return []


def _count(delta: StatDelta, f: Finish) -> None:
    """The rollup counts attempts: success -> completed; failed, timeout, dead-letter -> failed. Also every
    attempt's error (deferrals and cancellations too), and the start latency of first attempts."""
    if f.execution_status == ExecutionStatus.SUCCESS:
        delta.completed += 1
    elif f.execution_status != ExecutionStatus.DEFERRED:
        delta.failed += 1
    if f.execution_status == ExecutionStatus.TIMEOUT or f.timed_out:
        delta.timeout += 1
    if f.duration_ms is not None and f.execution_status != ExecutionStatus.DEFERRED:
        delta.add_duration(f.duration_ms)
    delta.add_ended(error=f.execution_error, http_status=f.http_status, first_start_ms=f.start_ms)
