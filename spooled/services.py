"""What the Spooled surface adds on top of Spindle's services: a queue first named here is a pull queue, and
a job is found by id alone (Spooled's routes carry no queue)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.models import ApiKey, Workspace
from accounts.services import IssuedKey, api_key_create_named, api_key_revoke
from config.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from jobs.models import Job, Worker
from jobs.services.enqueue import queue_by_name
from jobs.services.pull import pull_queue_get, worker_register
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
    pull_queue_get(workspace=workspace, queue_name=queue_name)  # workers of a push queue: 409 INVALID_STATE
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


def api_key_create_scoped(
    *,
    workspace: Workspace,
    caller: ApiKey | None,
    name: str,
    queues: list[str] | None,
    rate_limit: int | None,
    expires_at: datetime | None,
) -> IssuedKey:
    """A named key with Spooled's scopes. A queue-scoped caller can only mint keys within its own queues, so a
    leaked scoped key cannot widen itself."""
    if caller is not None and caller.queues:
        if not queues or not set(queues) <= set(caller.queues):
            raise Forbidden("A queue-scoped key can only create keys limited to its own queues.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(details={"expires_at": ["Must be in the future."]})
    for queue_name in queues or []:
        queue_name_check(queue_name, "queues")
    issued = api_key_create_named(workspace=workspace, name=name)
    issued.key.queues, issued.key.rate_limit, issued.key.expires_at = queues or [], rate_limit, expires_at
    issued.key.save(update_fields=["queues", "rate_limit", "expires_at"])
    return issued


def api_key_update_scoped(
    *, workspace: Workspace, caller: ApiKey | None, key_id: str, changes: dict
) -> ApiKey:
    """Rename, re-scope or deactivate a key (a revoked key cannot come back: 422)."""
    key = ApiKey.objects.filter(workspace=workspace, id=key_id).first()
    if key is None:
        raise NotFound("API key not found.")
    if caller is not None and caller.queues:
        raise Forbidden("A queue-scoped key cannot change keys.")
    if changes.pop("is_active", None) is False and key.revoked_at is None:
        key = api_key_revoke(workspace=workspace, key_id=key_id)
    elif key.revoked_at is not None and changes:
        raise ValidationFailed(details={"is_active": ["This key is revoked; create a new one."]})
    for queue_name in changes.get("queues") or []:
        queue_name_check(queue_name, "queues")
    for field, value in changes.items():
        setattr(key, field, value)
    if changes:
        key.save(update_fields=list(changes))
    return key
