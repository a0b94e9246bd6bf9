"""factory_boy factories for what the tests build: workspaces (with their keys), keys, queues, jobs, schedules.

Workspaces and keys are made by the accounts services, as production makes them: a workspace comes with its
primary key, whose raw value exists only at creation, so `WorkspaceFactory()` returns what `workspace_create`
returns, the (workspace, issued key) pair, and `issued.raw` authenticates. Queues, jobs and schedules are
written straight to their tables, in whatever state a test needs (the services under test are not used to
set their own stage).
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

import factory
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import api_key_create, workspace_create
from config.ids import new_ids
from jobs.models import Job
from queues.models import Queue
from schedules.models import Schedule

TERMINAL = ("completed", "failed", "cancelled")
# Push targets that are never contacted: the tests that deliver aim at a loopback endpoint instead.
EXAMPLE_ENDPOINT = {"url": "https://example.com/hook", "method": "POST", "headers": {}, "timeout_ms": 30000}
FAILED_ERROR = {"message": "boom", "type": "Error", "http_status": None}


class WorkspaceFactory(factory.Factory):
    """`workspace_create(...)`: returns the (workspace, issued key) pair."""

    class Meta:
        model = workspace_create

    name = factory.Sequence(lambda n: f"ws-{n}")
    plan_code = "free"


def new_workspace(**fields: Any) -> Workspace:
    """Only the workspace of a `WorkspaceFactory` pair."""
    return WorkspaceFactory(**fields)[0]


class ApiKeyFactory(factory.Factory):
    """An extra key of a workspace (`api_key_create`): the issued key, `.raw` included."""

    class Meta:
        model = api_key_create

    workspace = factory.LazyFunction(new_workspace)
    name = factory.Sequence(lambda n: f"key-{n}")


def signing_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


class QueueFactory(factory.django.DjangoModelFactory):
    """A pull queue by default; `push=True` makes a push queue aimed at an endpoint that is never contacted."""

    class Meta:
        model = Queue

    class Params:
        push = factory.Trait(delivery="push", endpoint=factory.LazyFunction(lambda: dict(EXAMPLE_ENDPOINT)))

    workspace = factory.LazyFunction(new_workspace)
    name = factory.Sequence(lambda n: f"queue-{n}")
    delivery = "pull"
    signing_secret = factory.LazyFunction(signing_secret)


def make_queue(workspace: Workspace, name: str = "work", *, delivery: str = "pull", **fields: Any) -> Queue:
    """The short form most tests use: a named pull queue, or a push queue (`delivery="push"`)."""
    return QueueFactory(workspace=workspace, name=name, push=delivery == "push", **fields)


def _when_active(value: Any) -> factory.LazyAttribute:
    return factory.LazyAttribute(lambda job: value(job) if job.state == "active" else None)


class JobFactory(factory.django.DjangoModelFactory):
    """A job row in `state`, due now, with what the table requires of that state (a lease, a finish time).

    `ran=True` adds what the engine leaves on a job that went through an attempt: one attempt counted, its
    start, its result or error, and a delayed job due in an hour; terminal jobs then finished
    `finished_ago_s` seconds ago.
    """

    class Meta:
        model = Job

    class Params:
        now = factory.LazyFunction(timezone.now)
        finished_ago_s = 0.0
        ran = factory.Trait(
            attempts=factory.LazyAttribute(
                lambda job: 1 if job.state == "active" or job.state in TERMINAL else 0
            ),
            started_at=_when_active(lambda job: job.now),
            run_at=factory.LazyAttribute(
                lambda job: job.now + timedelta(hours=1 if job.state == "delayed" else 0)
            ),
            result=factory.LazyAttribute(lambda job: {"ok": True} if job.state == "completed" else None),
            last_error=factory.LazyAttribute(
                lambda job: dict(FAILED_ERROR) if job.state == "failed" else None
            ),
        )

    queue = factory.SubFactory(QueueFactory)
    workspace_id = factory.SelfAttribute("queue.workspace_id")
    state = "waiting"
    run_at = factory.SelfAttribute("now")
    created_at = factory.SelfAttribute("now")
    updated_at = factory.SelfAttribute("now")
    lease_token = _when_active(lambda job: uuid.uuid4().hex)
    lease_expires_at = _when_active(lambda job: job.now + timedelta(minutes=5))
    finished_at = factory.LazyAttribute(
        lambda job: job.now - timedelta(seconds=job.finished_ago_s) if job.state in TERMINAL else None
    )


def insert_jobs(queue: Queue, count: int = 1, *, now: datetime | None = None, **fields: Any) -> list[Job]:
    """`count` JobFactory rows in one INSERT: ids in creation order, payload {"n": i} unless given.

    Without a `state`, a job is waiting, or delayed when `run_at` is in the future.
    """
    now = now or timezone.now()
    if "state" not in fields:
        fields["state"] = "waiting" if fields.get("run_at", now) <= now else "delayed"
    fields.setdefault("payload", factory.Iterator([{"n": i} for i in range(count)]))
    ids = factory.Iterator(new_ids("job", count))
    jobs = JobFactory.build_batch(count, queue=queue, id=ids, now=now, **fields)
    Job.objects.bulk_create(jobs, batch_size=5000)
    return jobs


class ScheduleFactory(factory.django.DjangoModelFactory):
    """An interval schedule (every minute) of a queue."""

    class Meta:
        model = Schedule

    queue = factory.SubFactory(QueueFactory)
    workspace = factory.SelfAttribute("queue.workspace")
    name = factory.Sequence(lambda n: f"schedule-{n}")
    interval_ms = 60000
