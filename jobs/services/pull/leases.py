"""Lease-fenced operations on a held job: extend, progress, complete/fail one, or acknowledge a batch.

Only the current lease token matches (fencing): a job re-leased by the sweeper has a new token, and the old
holder gets LEASE_LOST. Outcomes go through the engine's fenced batch path (`jobs_record_outcomes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Workspace
from config.exceptions import LeaseLost, NotFound
from jobs.models import Job, JobState, Worker
from jobs.services.engine import Outcome, job_get_fast, jobs_record_outcomes
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


def job_lease_extend(
    *, workspace: Workspace, queue_name: str, job_id: str, lease_token: str, lease_ms: int | None = None
) -> tuple[Queue, Job]:
    """Extend the lease of a job the caller holds (fenced by `lease_token`)."""
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
    return queue, job


def job_progress_set(
    *, workspace: Workspace, queue_name: str, job_id: str, lease_token: str, progress: Any
) -> tuple[Queue, Job]:
    """Record a held job's progress and emit `job:progress` in the same transaction."""
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
    return queue, Job.objects.get(pk=job_id)


def _elapsed_ms(started_at: datetime | None, now: datetime) -> int | None:
    """An attempt's duration (finished - started, API.md Executions `duration_ms`); never negative on clock skew."""
    if started_at is None:
        return None
    return max(0, int((now - started_at).total_seconds() * 1000))


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
) -> tuple[Queue, Job]:
    """Complete or fail one held job through the engine's fenced outcome path; stale token -> LEASE_LOST."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    # No existence check up front: the outcome path is scoped to this queue, and a job it does not find
    # (another queue's or workspace's, or unknown) is told apart from a lost lease afterwards.
    # The claim stamped the attempt's start on the job; the engine writes this duration to the execution
    # and to the queue's minute rollup (metrics avg/p95). Primary-key lookup; a stale token finds nothing.
    started_at = (
        Job.objects.filter(pk=job_id, workspace=workspace, queue=queue, lease_token=lease_token)
        .values_list("started_at", flat=True)
        .first()
    )
    item = AckItem(
        id=job_id, lease_token=lease_token, success=success, result=result, error=error, retry=retry
    )
    outcome = item.outcome(duration_ms=_elapsed_ms(started_at, timezone.now()))
    if jobs_record_outcomes(outcomes=[outcome], workspace_id=workspace.id, queue_id=queue.id):
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    job = job_get_fast(job_id)
    if job is None:
        raise NotFound("No such job.")  # deleted by a cascade right after the outcome was written
    return queue, job


def jobs_ack(*, workspace: Workspace, queue_name: str, items: list[AckItem]) -> tuple[int, list[str]]:
    """Record a batch of outcomes in one engine transaction. Returns (acked, lease-lost ids in input order);
    ids that are not jobs of this queue are listed as lease-lost too, and nothing is written for them."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    if not items:
        return 0, []
    ids = [item.id for item in items]
    # The same read gives each attempt's start, for its `duration_ms` (see job_finish_pull).
    started = dict(
        Job.objects.filter(workspace=workspace, queue=queue, id__in=ids).values_list("id", "started_at")
    )
    now = timezone.now()
    outcomes = [
        item.outcome(duration_ms=_elapsed_ms(started[item.id], now)) for item in items if item.id in started
    ]
    lost = set(jobs_record_outcomes(outcomes=outcomes, workspace_id=workspace.id)) if outcomes else set()
    lease_lost = [job_id for job_id in ids if job_id not in started or job_id in lost]
    return len(ids) - len(lease_lost), lease_lost
