"""The sweeper (DESIGN.md invariant 1): the database is the truth, the broker only carries hints. A periodic
sweep promotes due delayed jobs, rescues expired leases and re-kicks every queue with ready jobs, so a flushed
Redis or a killed worker loses no job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db.models import Exists, OuterRef, Q

from jobs.models import ExecutionStatus, Job, JobState
from jobs.services.dispatch import kick_on_commit
from jobs.services.engine.common import SWEEP_BATCH, TERMINAL, atomic, db_now
from jobs.services.engine.finish import Finish, first_start_ms
from jobs.services.engine.outcomes import apply
from jobs.services.engine.quarantine import jobs_quarantine_bad_datetimes
from queues.events import PendingEvent, events_emit
from queues.models import Queue

logger = logging.getLogger(__name__)

# Queues the per-queue fallback of a failed sweep step visits at most per sweep.
SWEEP_FALLBACK_QUEUES = 1000
_LEASE_EXPIRED = {"message": "The lease expired before the attempt finished.", "type": "lease_expired"}

Step = Callable[[datetime, str | None], tuple[int, set[str]]]


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


def _promote_due(now: datetime, queue_id: str | None = None) -> tuple[int, set[str]]:
    children = Job.objects.filter(parent_id=OuterRef("pk"))
    # A parent waiting for children is not "due" until it has children and all are terminal.
    blocked = Q(wait_for_children=True) & (~Exists(children) | Exists(children.exclude(state__in=TERMINAL)))
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
    events = [
        PendingEvent(job.workspace_id, "job:stalled", job.queue.name, job.id, {"attempt": job.attempts})
        for job in jobs
    ]
    finishes = [_expire(job, now) for job in jobs]
    events_emit(events, now=now)
    apply(now=now, finishes=finishes)
    return len(jobs), {j.queue_id for j in jobs if j.state == JobState.WAITING}


def _expire(job: Job, now: datetime) -> Finish:
    """A job whose lease ran out: cancelled if asked to, failed if out of attempts, else waiting again."""
    start_ms = first_start_ms(job)
    job.last_error = dict(_LEASE_EXPIRED)
    job.lease_token = None
    job.lease_expires_at = None
    job.worker_id = None
    job.updated_at = now
    status = ExecutionStatus.TIMEOUT
    if job.cancel_requested:
        job.state = JobState.CANCELLED
        job.finished_at = now
    elif job.attempts >= job.max_attempts:
        job.state = JobState.FAILED
        job.finished_at = now
        status = ExecutionStatus.DEAD_LETTER
    else:
        # Straight back to waiting: the worker vanished, the target did not refuse, so no backoff.
        job.state = JobState.WAITING
    return Finish(job, status, None, None, timed_out=True, start_ms=start_ms)


def _sweep_step(step: Step, pending: Q, due_field: str) -> int:
    """Run one sweep step for all queues at once; if that fails, quarantine and redo it queue by queue."""
    try:
        return _sweep_once(step, None)
    except Exception:  # noqa: BLE001 - one bad row or queue must not stop the sweep of every tenant
        logger.exception(
            "sweeper: %s failed; quarantining bad rows and retrying queue by queue", step.__name__
        )
    jobs_quarantine_bad_datetimes()
    with atomic():
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


def _sweep_once(step: Step, queue_id: str | None) -> int:
    with atomic():
        now = db_now()
        count, queues = step(now, queue_id)
        kick_on_commit(queues)
    return count
