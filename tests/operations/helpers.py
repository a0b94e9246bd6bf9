"""Row builders for the operations tests: jobs in any state as the engine leaves them, written straight to the table."""

from __future__ import annotations

from typing import Any

from jobs.models import Job
from queues.models import Event, Queue
from tests.factories import (
    JobFactory,
    insert_jobs,
)

# Terminal jobs finished an hour ago unless a test says otherwise.
RAN = {"ran": True, "finished_ago_s": 3600}


def make_job(queue: Queue, state: str = "waiting", **extra: Any) -> Job:
    return JobFactory(queue=queue, state=state, **{**RAN, **extra})


def make_jobs(queue: Queue, state: str, count: int, **extra: Any) -> list[str]:
    return [job.id for job in insert_jobs(queue, count, state=state, **{**RAN, "payload": None, **extra})]


def events_of(queue: Queue, type: str) -> list[Event]:
    return list(Event.objects.filter(workspace_id=queue.workspace_id, queue_name=queue.name, type=type))
