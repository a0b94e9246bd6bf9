"""Lease-fenced operations on a held job: extend, progress, complete/fail one, or acknowledge a batch.

Only the current lease token matches (fencing): a job re-leased by the sweeper has a new token, and the old
holder gets LEASE_LOST. Outcomes go through the engine's fenced batch path (`jobs_record_outcomes`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Workspace
from config import db
from config.exceptions import LeaseLost, NotFound
from jobs.models import Job, JobState, Worker
from jobs.services.engine import Outcome, jobs_record_pull_outcomes
from jobs.services.engine.rows import job_cols_safe, load_job
from jobs.services.pull.claims import pull_queue_get
from queues.events import PendingEvent, events_emit
from queues.models import Queue


@dataclass(frozen=True)
class AckItem:
    """One outcome of a batch acknowledgement (validated by the view)."""

    id: str
    lease_token: str
    success: bool
    result: Any = None
    error: dict[str, Any] | None = None
    retry: bool = True

    def outcome(self, *, duration_ms: int | None) -> Outcome:
        return Outcome(
            job_id=self.id,
            lease_token=self.lease_token,
            kind="success" if self.success else "failure",
            result=self.result if self.success else None,
            error=None if self.success else self.error,
            retry=self.retry,
            duration_ms=duration_ms,
        )


def _fenced(*, workspace: Workspace, queue: Queue, job_id: str, lease_token: str) -> QuerySet[Job]:
    # Fencing: only the current holder's token matches; a re-leased job has a new token.
    return Job.objects.filter(
        id=job_id, workspace=workspace, queue=queue, state=JobState.ACTIVE, lease_token=lease_token
    )


def _lost_or_missing(*, workspace: Workspace, queue: Queue, job_id: str) -> None:
    state = (
        Job.objects.filter(id=job_id, workspace=workspace, queue=queue)
        .values_list("state", flat=True)
        .first()
    )
    if state is None:
        raise NotFound("No such job.")
    raise LeaseLost(details={"job_id": job_id, "state": state})


# One statement: the fenced lease extension (scoped to the workspace's pull queue by name, the lease measured on
# the database clock), the holding worker's sign of life, and the job read back.
_EXTEND_SQL = """
WITH j AS (
    UPDATE jobs_job AS j
    SET lease_expires_at = now() + make_interval(secs => coalesce(%s, q.lease_ms) / 1000.0), updated_at = now()
    FROM queues_queue AS q
    WHERE j.id = %s AND j.workspace_id = %s AND j.state = 'active' AND j.lease_token = %s
      AND q.id = j.queue_id AND q.name = %s AND q.delivery = 'pull'
    RETURNING j.*
), w AS (
    UPDATE jobs_worker SET last_seen_at = now()
    WHERE workspace_id = %s AND id = (SELECT worker_id FROM j)
)
SELECT {columns} FROM j
"""


@functools.cache
def _extend_sql() -> str:
    return _EXTEND_SQL.format(columns=job_cols_safe())


def job_lease_extend(
    *, workspace: Workspace, queue_name: str, job_id: str, lease_token: str, lease_ms: int | None = None
) -> tuple[str, Job]:
    """Extend the lease of a job the caller holds (fenced by `lease_token`); returns (queue name, job)."""
    if db.backend().SET_BASED:
        params = [lease_ms, job_id, workspace.id, lease_token, queue_name, workspace.id]
        with connection.cursor() as cursor:
            cursor.execute(_extend_sql(), params)
            row = cursor.fetchone()
        if row is not None:
            return queue_name, load_job(row)
        queue = pull_queue_get(workspace=workspace, queue_name=queue_name)  # 404 or 409 before lost/missing
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    now = timezone.now()
    expires = now + timedelta(milliseconds=lease_ms or queue.lease_ms)
    if not _fenced(workspace=workspace, queue=queue, job_id=job_id, lease_token=lease_token).update(
        lease_expires_at=expires, updated_at=now
    ):
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    job = Job.objects.get(pk=job_id)
    if job.worker_id:
        Worker.objects.filter(workspace=workspace, id=job.worker_id).update(last_seen_at=now)
    return queue.name, job


def job_progress_set(
    *, workspace: Workspace, queue_name: str, job_id: str, lease_token: str, progress: Any
) -> tuple[str, Job]:
    """Record a held job's progress and emit `job:progress` in the same transaction; (queue name, job)."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    now = timezone.now()
    with transaction.atomic(durable=True):
        updated = _fenced(workspace=workspace, queue=queue, job_id=job_id, lease_token=lease_token).update(
            progress=progress, updated_at=now
        )
        if updated:
            event = PendingEvent(
                workspace_id=workspace.id,
                type="job:progress",
                queue_name=queue.name,
                job_id=job_id,
                data={"progress": progress},
            )
            events_emit([event], now=now)
    if not updated:
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    return queue.name, Job.objects.get(pk=job_id)


def job_finish_pull(
    *,
    workspace: Workspace,
    queue_name: str,
    job_id: str,
    lease_token: str,
    success: bool,
    result: Any = None,
    error: dict[str, Any] | None = None,
    retry: bool = True,
) -> tuple[str, Job]:
    """Complete or fail one held job through the engine's fenced outcome path; (queue name, job as written).

    Two statements on the way that succeeds: the engine's lock (scoped to the pull queue by name, so there is no
    queue lookup first) and its writes, which read the job back. Only when nothing was written are the queue
    (404, or 409 for a push queue) and the job (404, or LEASE_LOST) looked at, to say why."""
    item = AckItem(
        id=job_id, lease_token=lease_token, success=success, result=result, error=error, retry=retry
    )
    lost, job = jobs_record_pull_outcomes(
        outcomes=[item.outcome(duration_ms=None)],
        workspace_id=workspace.id,
        queue_name=queue_name,
        reread=True,
    )
    if job is not None:
        return queue_name, job
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    if lost:
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    raise NotFound("No such job.")  # deleted by a cascade right after the outcome was written


def jobs_ack(*, workspace: Workspace, queue_name: str, items: list[AckItem]) -> tuple[int, list[str]]:
    """Record a batch of outcomes in one engine transaction. Returns (acked, lease-lost ids in input order);
    ids that are not jobs of this queue are listed as lease-lost too, and nothing is written for them."""
    if not items:
        pull_queue_get(workspace=workspace, queue_name=queue_name)  # 404, or 409 for a push queue
        return 0, []
    # Each attempt's `duration_ms` comes from its start, read by the engine's lock (no read of our own first).
    outcomes = [item.outcome(duration_ms=None) for item in items]
    lost = set(
        jobs_record_pull_outcomes(outcomes=outcomes, workspace_id=workspace.id, queue_name=queue_name)[0]
    )
    if len(lost) == len(items):
        # Nothing was written, which an unknown or push queue explains too (the lock is scoped to the pull queue
        # of that name): looked up only now, so an ack that wrote something needs no queue lookup.
        pull_queue_get(workspace=workspace, queue_name=queue_name)
    lease_lost = [item.id for item in items if item.id in lost]
    return len(items) - len(lease_lost), lease_lost
