"""What the Spooled surface adds on top of Spindle's services: a queue first named here is a pull queue, and
a job is found by id alone (Spooled's routes carry no queue)."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import Workspace
from config.exceptions import Conflict, NotFound, ValidationFailed
from jobs.models import Job, Worker
from jobs.services.enqueue import queue_by_name
from jobs.services.pull import worker_register
from queues.models import Queue
from queues.serializers import NAME_RE
from queues.services import queue_create


def queue_name_check(name: str, field: str = "queue_name") -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationFailed(
            details={
                field: ["1 to 64 characters: letters, digits, `_ . : -`, starting with a letter or digit."]
            }
        )


def queue_get_or_create_pull(*, workspace: Workspace, name: str) -> Queue:
    """The workspace's queue by name; one that does not exist yet is created as a pull queue (Spooled's workers
    claim its jobs). An existing push queue is returned as it is: its jobs stay the delivery engine's."""
    queue_name_check(name)
    queue = queue_by_name(workspace_id=workspace.id, name=name)
    if queue is not None:
        return queue
    try:
        queue, _secret = queue_create(
            workspace=workspace, data={"name": name, "delivery": Queue.Delivery.PULL}
        )
    except Conflict:
        queue = Queue.objects.get(workspace=workspace, name=name)  # created in parallel since we looked
    return queue


def queue_get(*, workspace: Workspace, name: str) -> Queue:
    queue = Queue.objects.filter(workspace=workspace, name=name).first()
    if queue is None:
        raise NotFound(f"Queue '{name}' not found.")
    return queue


def job_by_id(*, workspace: Workspace, job_id: str) -> Job:
    """A job of the workspace with its queue loaded; another workspace's job is a 404 like an unknown one."""
    job = Job.objects.filter(workspace=workspace, id=job_id).select_related("queue").first()
    if job is None:
        raise NotFound(f"Job '{job_id}' not found.")
    return job


def worker_upsert(
    *,
    workspace: Workspace,
    queue_name: str,
    hostname: str,
    name: str | None,
    concurrency: int,
    metadata: dict,
) -> Worker:
    """Register a pull worker for one queue. A worker that names itself (Spooled's `worker_id`) and was seen
    before gets its row back (a restart does not leave a stale one); otherwise a new worker is registered."""
    queue_get_or_create_pull(workspace=workspace, name=queue_name)
    if name:
        existing = Worker.objects.filter(workspace=workspace, name=name).order_by("created_at").first()
        if existing is not None:
            existing.queues, existing.hostname = [queue_name], hostname
            existing.concurrency, existing.metadata = concurrency, metadata
            existing.last_seen_at = timezone.now()
            existing.save(update_fields=["queues", "hostname", "concurrency", "metadata", "last_seen_at"])
            return existing
    return worker_register(
        workspace=workspace,
        name=name or hostname,
        queues=[queue_name],
        hostname=hostname,
        concurrency=concurrency,
        metadata=metadata,
    )
