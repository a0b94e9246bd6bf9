from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Execution, Job, Worker
from tests.conftest import make_client
from tests.factories import make_queue
from tests.pull.conftest import claim, enqueue
from tests.threads import wait_then_wake


@pytest.mark.django_db
def test_claim_leases_jobs(api_client, workspace, pull_queue):
    jobs = enqueue(workspace, pull_queue, 3)
    worker = api_client.post("/v1/workers", {"name": "w"}, format="json").json()
    response = claim(api_client, limit=2, lease_ms=60000, worker_id=worker["id"])
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert [j["id"] for j in data] == [jobs[0].id, jobs[1].id]  # FIFO at equal priority
    for item in data:
        assert item["state"] == "active" and item["attempts"] == 1 and item["queue"] == "work"
        assert item["lease_token"] and item["lease_expires_at"].endswith("Z")
        job = Job.objects.get(id=item["id"])
        assert job.lease_token == item["lease_token"] and job.worker_id == worker["id"]
        remaining = (job.lease_expires_at - timezone.now()).total_seconds()
        assert 55 < remaining <= 60
        execution = Execution.objects.get(job_id=item["id"])
        assert (
            execution.status == "running" and execution.worker_id == worker["id"] and execution.attempt == 1
        )
    assert Job.objects.get(id=jobs[2].id).state == "waiting"


@pytest.mark.django_db
def test_claim_defaults_to_one_job_and_queue_lease(api_client, workspace):
    queue = make_queue(workspace, "work", lease_ms=120000)
    enqueue(workspace, queue, 2)
    response = api_client.post("/v1/queues/work/jobs/claim", format="json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert len(data) == 1
    remaining = (Job.objects.get(id=data[0]["id"]).lease_expires_at - timezone.now()).total_seconds()
    assert 115 < remaining <= 120


@pytest.mark.django_db
def test_claim_empty_queue_returns_empty_list(api_client, pull_queue):
    response = claim(api_client, limit=5)
    assert response.status_code == 200
    assert response.json() == {"data": []}


@pytest.mark.django_db
def test_claim_on_push_queue_is_invalid_state(api_client, workspace, push_queue):
    response = claim(api_client, "hooks")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "INVALID_STATE" and error["details"] == {"delivery": "push"}


@pytest.mark.django_db
def test_claim_unknown_or_foreign_queue_is_404(api_client, other_workspace_and_key):
    other_ws = other_workspace_and_key[0]
    theirs = make_queue(other_ws, "theirs")
    enqueue(other_ws, theirs, 1)
    for name in ("nope", "theirs"):
        response = claim(api_client, name)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert Job.objects.get(queue=theirs).state == "waiting"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"limit": True}, "limit"),
        ({"lease_ms": 999}, "lease_ms"),
        ({"lease_ms": 3_600_001}, "lease_ms"),
        ({"wait_ms": -1}, "wait_ms"),
        ({"wait_ms": 20_001}, "wait_ms"),
        ({"worker_id": 5}, "worker_id"),
        ({"worker_id": "wkr_unknown"}, "worker_id"),
        ({"queue": "x"}, "queue"),
    ],
)
def test_claim_validation(api_client, workspace, pull_queue, body, field):
    enqueue(workspace, pull_queue, 1)
    response = claim(api_client, **body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]
    assert Job.objects.get(queue=pull_queue).state == "waiting"


@pytest.mark.django_db
def test_claim_with_other_workspaces_worker_is_refused(
    api_client, other_workspace_client, workspace, pull_queue
):
    theirs = other_workspace_client.post("/v1/workers", {"name": "w"}, format="json").json()
    enqueue(workspace, pull_queue, 1)
    response = claim(api_client, worker_id=theirs["id"])
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"worker_id": ["Unknown worker."]}


@pytest.mark.django_db
def test_claim_touches_worker_last_seen(api_client, workspace, pull_queue):
    worker = api_client.post("/v1/workers", {"name": "w"}, format="json").json()
    old = timezone.now() - timedelta(hours=1)
    Worker.objects.filter(id=worker["id"]).update(last_seen_at=old)
    claim(api_client, worker_id=worker["id"])
    assert Worker.objects.get(id=worker["id"]).last_seen_at > old + timedelta(minutes=59)


@pytest.mark.django_db
def test_claim_honours_pause_and_concurrency(api_client, workspace):
    queue = make_queue(workspace, "work", concurrency=2)
    enqueue(workspace, queue, 5)
    assert len(claim(api_client, limit=10).json()["data"]) == 2
    assert claim(api_client, limit=10).json()["data"] == []
    paused = make_queue(workspace, "paused", paused=True)
    enqueue(workspace, paused, 1)
    assert claim(api_client, "paused").json()["data"] == []


@pytest.mark.django_db
def test_claim_honours_group_concurrency(api_client, workspace):
    queue = make_queue(workspace, "work", group_concurrency=1)
    enqueue(workspace, queue, 3, group="tenant-a")
    enqueue(workspace, queue, 1, group="tenant-b")
    groups = [j["group"] for j in claim(api_client, limit=10).json()["data"]]
    assert sorted(groups) == ["tenant-a", "tenant-b"]


@pytest.mark.django_db
def test_claim_wait_times_out_empty(api_client, pull_queue):
    started = time.monotonic()
    response = claim(api_client, wait_ms=400)
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.json()["data"] == []
    assert 0.35 < elapsed < 2.0


@pytest.mark.django_db(transaction=True)
def test_long_poll_wakes_on_enqueue(workspace_and_key):
    """A claim waiting with wait_ms=5000 on an empty queue returns soon after another thread enqueues."""
    assert connection.vendor == "postgresql"
    workspace, key = workspace_and_key
    queue = make_queue(workspace, "work")
    client = make_client(key.raw)
    woken = wait_then_wake(lambda: claim(client, wait_ms=5000), lambda: enqueue(workspace, queue, 1)[0])
    response, job = woken.waited, woken.woke
    assert response.status_code == 200, response.content
    assert [j["id"] for j in response.json()["data"]] == [job.id]
    latency_ms = woken.latency_s * 1000
    print(f"\nlong-poll wake-up latency: {latency_ms:.1f} ms (waited {woken.waited_s * 1000:.0f} ms)")
    assert latency_ms < 1000
    assert woken.waited_s < 2.0
