"""Queue operations that touch the queue's jobs or the engine, on top of queues.services (which cannot import
jobs: DESIGN.md "Layers"): update and resume wake the engine, delete removes the jobs first."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Workspace
from config.exceptions import Conflict
from jobs.models import TERMINAL_STATES, Execution, Job
from jobs.queue_selectors import queue_has_unfinished_jobs
from jobs.services.dispatch import kick_on_commit
from queues import services as queue_services
from queues.models import Queue

# Obliterate deletes in batches this size, each in its own short transaction, so one huge queue never holds
# locks on jobs_job long enough to stall the claimers of every other queue.
OBLITERATE_BATCH = 5000


def queue_update(*, workspace: Workspace, queue: Queue, data: dict[str, Any]) -> Queue:
    """queues.services.queue_update, then a hint to the engine: a raised concurrency or rate limit may let
    waiting jobs run now rather than at the next sweep. A hint is harmless when nothing changed."""
    with transaction.atomic():
        queue = queue_services.queue_update(workspace=workspace, queue=queue, data=data)
        kick_on_commit([queue.id])
    return queue


def queue_resume(*, workspace: Workspace, queue: Queue, job_name: str | None = None) -> Queue:
    """queues.services.queue_resume, then a hint to the engine: jobs may have been waiting all along, so they
    are delivered now, not at the next sweep."""
    with transaction.atomic():
        queue = queue_services.queue_resume(workspace=workspace, queue=queue, job_name=job_name)
        kick_on_commit([queue.id])
    return queue


def queue_delete(*, workspace: Workspace, queue: Queue, force: bool = False) -> None:
    """Delete a queue. Refuses (409) while it has waiting, delayed or active jobs unless `force` (obliterate)."""
    if force:
        # Obliterate: pause first so no delivery claims jobs while we delete them.
        Queue.objects.filter(pk=queue.pk, workspace=workspace).update(paused=True)
    else:
        _refuse_if_unfinished(queue=queue)
    # Finished history can be huge: delete it in bounded batches before the final, short transaction.
    _delete_jobs_batches(queue=queue, terminal_only=not force)
    with transaction.atomic():
        locked = Queue.objects.select_for_update().filter(pk=queue.pk, workspace=workspace).first()
        if locked is None:
            return
        if not force:
            # A job enqueued while the batches ran must not vanish without ?force=true.
            _refuse_if_unfinished(queue=locked)
        # Anything left (jobs enqueued since the last batch) goes with the queue (Job.queue cascades).
        locked.delete()


def _refuse_if_unfinished(*, queue: Queue) -> None:
    if queue_has_unfinished_jobs(queue=queue):
        raise Conflict(
            "The queue still has waiting, delayed or active jobs; delete with ?force=true to obliterate it.",
            details={"queue": queue.name},
        )


def _delete_jobs_batches(*, queue: Queue, terminal_only: bool = False) -> int:
    """Delete the queue's jobs and their executions, OBLITERATE_BATCH at a time, each batch in its own transaction."""
    deleted = 0
    while True:
        with transaction.atomic():
            jobs = Job.objects.filter(workspace_id=queue.workspace_id, queue=queue)
            if terminal_only:
                jobs = jobs.filter(state__in=[s.value for s in TERMINAL_STATES])
            ids = list(jobs.order_by("id").values_list("id", flat=True)[:OBLITERATE_BATCH])
            if not ids:
                break
            # Children in other queues outlive their parent (Job.parent is SET_NULL).
            Job.objects.filter(parent_id__in=ids).update(parent=None)
            Execution.objects.filter(job_id__in=ids).delete()
            Job.objects.filter(id__in=ids).only("id").delete()
            deleted += len(ids)
    # Executions not tied to a job (e.g. a schedule run refused by quota) go too.
    while True:
        with transaction.atomic():
            exe_ids = list(
                Execution.objects.filter(queue=queue, job__isnull=True).values_list("id", flat=True)[
                    :OBLITERATE_BATCH
                ]
            )
            if not exe_ids:
                break
            Execution.objects.filter(id__in=exe_ids).delete()
    return deleted
