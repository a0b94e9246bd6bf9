"""Row builders for the operations tests: jobs in any state, written straight to the table."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from config.ids import new_ids
from jobs.models import Event, Job
from queues.models import Queue

TERMINAL = ("completed", "failed", "cancelled")


def make_queue(workspace: Any, name: str = "emails", delivery: str = "pull") -> Queue:
    return Queue.objects.create(workspace=workspace, name=name, delivery=delivery, signing_secret="whsec_x")


def job_fields(state: str, *, now: Any = None, finished_ago_s: float = 3600, **extra: Any) -> dict[str, Any]:
    now = now or timezone.now()
    fields: dict[str, Any] = {"state": state, "run_at": now, "created_at": now, "updated_at": now}
    if state == "delayed":
        fields["run_at"] = now + timedelta(hours=1)
    if state == "active":
        fields.update(lease_token=uuid.uuid4().hex, lease_expires_at=now + timedelta(minutes=5), attempts=1,
                      started_at=now)
    if state in TERMINAL:
        fields.update(finished_at=now - timedelta(seconds=finished_ago_s), attempts=1)
    if state == "failed":
        fields["last_error"] = {"message": "boom", "type": "Error", "http_status": None}
    if state == "completed":
        fields["result"] = {"ok": True}
    fields.update(extra)
    return fields


def make_job(queue: Queue, state: str = "waiting", **extra: Any) -> Job:
    return Job.objects.create(workspace_id=queue.workspace_id, queue=queue, **job_fields(state, **extra))


def make_jobs(queue: Queue, state: str, count: int, **extra: Any) -> list[str]:
    ids = new_ids("job", count)
    now = timezone.now()
    Job.objects.bulk_create(
        [Job(id=i, workspace_id=queue.workspace_id, queue=queue, **job_fields(state, now=now, **extra)) for i in ids],
        batch_size=5000,
    )
    return ids


def events_of(queue: Queue, type: str) -> list[Event]:
    return list(Event.objects.filter(workspace_id=queue.workspace_id, queue_name=queue.name, type=type))
