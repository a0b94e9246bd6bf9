"""Engine fixtures: queues and jobs made directly (the enqueue service is another part's)."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from config.ids import new_ids
from jobs.models import Job
from queues.models import Queue


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def make_queue(workspace):
    def make(name: str = "q", **fields) -> Queue:
        fields.setdefault("delivery", "push")
        fields.setdefault("signing_secret", new_secret())
        return Queue.objects.create(workspace=workspace, name=name, **fields)

    return make


def insert_jobs(queue: Queue, count: int = 1, **fields) -> list[Job]:
    now = timezone.now()
    run_at = fields.pop("run_at", now)
    state = fields.pop("state", "waiting" if run_at <= now else "delayed")
    jobs = [
        Job(
            id=job_id,
            workspace_id=queue.workspace_id,
            queue=queue,
            run_at=run_at,
            state=state,
            created_at=now,
            updated_at=now,
            payload={"n": i},
            **fields,
        )
        for i, job_id in enumerate(new_ids("job", count))
    ]
    Job.objects.bulk_create(jobs)
    return jobs


@pytest.fixture
def make_jobs():
    return insert_jobs


def past(ms: int = 1000):
    return timezone.now() - timedelta(milliseconds=ms)
