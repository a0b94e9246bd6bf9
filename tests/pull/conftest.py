"""Fixtures for pull-worker tests: pull and push queues, enqueue and claim helpers."""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from queues.models import Queue
from tests.factories import make_queue


def enqueue(workspace, queue: Queue, count: int = 1, **spec_fields) -> list[Job]:
    jobs: list[Job] = []
    for start in range(0, count, 1000):
        specs = [JobSpec(payload={"n": start + i}, **spec_fields) for i in range(min(1000, count - start))]
        jobs += [job for job, _created in job_enqueue_batch(workspace=workspace, queue=queue, specs=specs)]
    return jobs


@pytest.fixture
def pull_queue(workspace) -> Queue:
    return make_queue(workspace, "work")


@pytest.fixture
def push_queue(workspace) -> Queue:
    return make_queue(workspace, "hooks", delivery="push")


def claim(client, queue_name: str = "work", **body):
    return client.post(f"/v1/queues/{queue_name}/jobs/claim", body, format="json")


def claim_one(client, queue_name: str = "work", **body) -> dict:
    response = claim(client, queue_name, **body)
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert len(data) == 1, data
    return data[0]
