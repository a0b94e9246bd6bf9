from __future__ import annotations

import pytest
from django.utils import timezone

from jobs.models import Job
from queues.models import Queue

# No DNS in the test sandbox: public targets are IP literals (documentation-free, globally routable).
PUBLIC_URL = "https://93.184.215.14/hooks/spindle"


@pytest.fixture
def make_queue(api_client):
    def make(name: str = "emails", **fields):
        body = {"name": name, "endpoint": {"url": PUBLIC_URL}, **fields}
        response = api_client.post("/v1/queues", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return make


def add_job(queue: Queue, state: str = "waiting", **fields) -> Job:
    now = timezone.now()
    if state in ("completed", "failed", "cancelled"):
        fields.setdefault("finished_at", now)
    if state == "active":
        fields.setdefault("lease_token", "tok")
        fields.setdefault("lease_expires_at", now)
    return Job.objects.create(
        workspace=queue.workspace, queue=queue, state=state, run_at=now, created_at=now, updated_at=now, **fields
    )
