"""Fixtures for alerts, webhooks and events: a pro workspace (rate limit headroom), a loopback receiver,
and helpers that write executions and outbox events the way the engine does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.utils import timezone

from jobs.models import Execution
from queues.events import PendingEvent, events_emit
from queues.models import Queue
from tests.conftest import make_client
from tests.endpoints import Endpoint, recording_endpoint
from tests.factories import JobFactory, WorkspaceFactory


@pytest.fixture
def receiver() -> Iterator[Endpoint]:
    """A loopback HTTP endpoint recording every POST; `statuses` are answered in turn (then the last one)."""
    with recording_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def private_targets(settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


@pytest.fixture
def pro(plans):
    workspace, key = WorkspaceFactory(name="pro-ws", plan_code="pro")
    return workspace, make_client(key.raw)


@pytest.fixture
def pro_workspace(pro):
    return pro[0]


@pytest.fixture
def pro_client(pro):
    return pro[1]


def finish_attempt(
    queue: Queue, status: str, *, schedule_id: str | None = None, event: str | None = None
) -> Execution:
    """One finished attempt (a job, its execution row) and the outbox event the engine writes with it."""
    now = timezone.now()
    state = {"success": "completed", "dead_letter": "failed"}.get(status, "delayed")
    job = JobFactory(queue=queue, state=state, now=now, attempts=1, schedule_id=schedule_id)
    execution = Execution.objects.create(
        workspace=queue.workspace,
        job=job,
        queue=queue,
        schedule_id=schedule_id,
        attempt=1,
        status=status,
        started_at=now,
        completed_at=now,
        duration_ms=5,
        error=None if status == "success" else {"message": "boom", "type": "http_error"},
    )
    etype = event or {"success": "job:completed", "dead_letter": "job:failed"}.get(status, "job:delayed")
    events_emit([PendingEvent(queue.workspace_id, etype, queue.name, job.id, {"attempt": 1})])
    time.sleep(0.002)  # distinct millisecond ids, so "newest" is unambiguous
    return execution
