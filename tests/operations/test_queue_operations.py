"""Queue bulk operations: drain, clean, retry, promote, groups (API.md Queues "Operations")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services import operations as ops
from tests.factories import make_queue

from .helpers import events_of, make_job, make_jobs

pytestmark = pytest.mark.django_db


def states(queue) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in Job.objects.filter(queue=queue).values_list("state", flat=True):
        out[state] = out.get(state, 0) + 1
    return out


def test_drain_removes_waiting_and_delayed_only(api_client, queue):
    make_jobs(queue, "waiting", 3)
    make_jobs(queue, "delayed", 2)
    active = make_job(queue, "active")
    done = make_job(queue, "completed")
    response = api_client.post(f"/v1/queues/{queue.name}/drain")
    assert response.status_code == 200, response.content
    assert response.json() == {"affected": 5}
    assert set(Job.objects.filter(queue=queue).values_list("id", flat=True)) == {active.id, done.id}
    assert len(events_of(queue, "job:removed")) == 5
    [drained] = events_of(queue, "queue:drained")
    assert drained.data == {"affected": 5}


def test_drain_deletes_the_removed_jobs_executions(api_client, queue):
    job = make_job(queue, "waiting")
    Execution.objects.create(
        workspace_id=queue.workspace_id,
        job=job,
        queue=queue,
        attempt=1,
        status="failed",
        started_at=timezone.now(),
    )
    assert api_client.post(f"/v1/queues/{queue.name}/drain").json() == {"affected": 1}
    assert not Execution.objects.filter(job_id=job.id).exists()


def test_drain_12000_jobs_in_small_batches(api_client, queue, monkeypatch):
    make_jobs(queue, "waiting", 9000)
    make_jobs(queue, "delayed", 3000)
    monkeypatch.setattr(ops, "BATCH_SIZE", 1000)
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post(f"/v1/queues/{queue.name}/drain")
    assert response.status_code == 200
    assert response.json() == {"affected": 12000}
    assert not Job.objects.filter(queue=queue).exists()
    assert len(events_of(queue, "job:removed")) == 12000
    assert len(events_of(queue, "queue:drained")) == 1
    # Bounded: every lock statement asked for at most one batch.
    locks = [q["sql"] for q in queries.captured_queries if "FOR UPDATE SKIP LOCKED" in q["sql"]]
    assert len(locks) >= 12
    assert all("LIMIT 1000" in sql for sql in locks)


def test_bulk_batches_are_separate_transactions(queue, workspace, django_db_blocker):
    # Service level: a batch size of 2 over 5 jobs takes 3 locked batches and removes all of them.
    make_jobs(queue, "waiting", 5)
    with CaptureQueriesContext(connection) as queries:
        assert ops.queue_drain(workspace=workspace, queue=queue, batch_size=2) == 5
    locks = [q["sql"] for q in queries.captured_queries if "FOR UPDATE SKIP LOCKED" in q["sql"]]
    assert len(locks) == 3


def test_clean_respects_state_grace_and_limit(api_client, queue):
    old = make_jobs(queue, "completed", 5, finished_ago_s=7200)
    recent = make_jobs(queue, "completed", 2, finished_ago_s=10)
    failed = make_jobs(queue, "failed", 2, finished_ago_s=7200)
    response = api_client.post(
        f"/v1/queues/{queue.name}/clean",
        {"state": "completed", "grace_ms": 3600_000, "limit": 3},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"affected": 3}
    left = set(Job.objects.filter(queue=queue).values_list("id", flat=True))
    assert len(left & set(old)) == 2 and set(recent) <= left and set(failed) <= left
    # Default grace 0 and default limit: the rest of the completed ones go.
    response = api_client.post(f"/v1/queues/{queue.name}/clean", {"state": "completed"}, format="json")
    assert response.json() == {"affected": 4}
    assert states(queue) == {"failed": 2}
    assert len(events_of(queue, "job:removed")) == 7


@pytest.mark.parametrize(
    "body,field",
    [
        ({"state": "bogus"}, "state"),  # waiting and delayed are cleanable (tests/api_gaps/test_conveyor.py)
        ({"state": "active"}, "state"),
        ({}, "state"),
        ({"state": "failed", "grace_ms": -1}, "grace_ms"),
        ({"state": "failed", "limit": 0}, "limit"),
        ({"state": "failed", "limit": 100_001}, "limit"),
        ({"state": "failed", "limit": "10"}, "limit"),
        ({"state": "failed", "extra": 1}, "extra"),
    ],
)
def test_clean_rejects_bad_bodies(api_client, queue, body, field):
    make_job(queue, "failed")
    response = api_client.post(f"/v1/queues/{queue.name}/clean", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert Job.objects.filter(queue=queue).count() == 1


def test_retry_all_failed(api_client, queue):
    failed = make_jobs(queue, "failed", 4)
    make_jobs(queue, "completed", 2)
    response = api_client.post(f"/v1/queues/{queue.name}/retry", {"state": "failed"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"affected": 4}
    for job in Job.objects.filter(id__in=failed):
        assert job.state == "waiting"
        assert (job.attempts, job.result, job.last_error, job.finished_at) == (0, None, None, None)
    assert states(queue) == {"waiting": 4, "completed": 2}
    assert len(events_of(queue, "job:waiting")) == 4


def test_retry_all_completed_clears_result(api_client, queue):
    make_jobs(queue, "completed", 3)
    response = api_client.post(f"/v1/queues/{queue.name}/retry", {"state": "completed"}, format="json")
    assert response.json() == {"affected": 3}
    assert list(Job.objects.filter(queue=queue).values_list("state", "result", "attempts").distinct()) == [
        ("waiting", None, 0)
    ]


@pytest.mark.parametrize("body", [{"state": "cancelled"}, {"state": "waiting"}, {}, {"state": 1}])
def test_retry_all_rejects_other_states(api_client, queue, body):
    make_job(queue, "cancelled")
    response = api_client.post(f"/v1/queues/{queue.name}/retry", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert states(queue) == {"cancelled": 1}


def test_retry_all_in_batches(queue, workspace):
    make_jobs(queue, "failed", 25)
    assert ops.queue_retry_jobs(workspace=workspace, queue=queue, state="failed", batch_size=4) == 25
    assert states(queue) == {"waiting": 25}


def test_promote_all_delayed(api_client, queue):
    delayed = make_jobs(queue, "delayed", 3)
    parent = make_job(queue, "delayed", wait_for_children=True)
    make_job(queue, "waiting")
    before = timezone.now()
    response = api_client.post(f"/v1/queues/{queue.name}/promote")
    assert response.status_code == 200
    assert response.json() == {"affected": 3}
    for job in Job.objects.filter(id__in=delayed):
        assert job.state == "waiting" and job.run_at >= before - timedelta(seconds=1)
        assert job.run_at <= timezone.now()
    parent.refresh_from_db()
    assert parent.state == "delayed"
    assert len(events_of(queue, "job:waiting")) == 3


def test_promote_refuses_a_body(api_client, queue):
    make_job(queue, "delayed")
    response = api_client.post(f"/v1/queues/{queue.name}/promote", {"x": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert states(queue) == {"delayed": 1}


def test_groups_counts_active_and_waiting(api_client, queue):
    make_jobs(queue, "waiting", 3, group="a")
    make_jobs(queue, "active", 1, group="a")
    make_jobs(queue, "waiting", 1, group="b")
    make_jobs(queue, "completed", 5, group="c")
    make_jobs(queue, "waiting", 2)
    response = api_client.get(f"/v1/queues/{queue.name}/groups")
    assert response.status_code == 200
    assert response.json() == {
        "data": [{"group": "a", "active": 1, "waiting": 3}, {"group": "b", "active": 0, "waiting": 1}],
        "next_cursor": None,
    }
    page = api_client.get(f"/v1/queues/{queue.name}/groups?limit=1").json()
    assert [g["group"] for g in page["data"]] == ["a"]
    page2 = api_client.get(f"/v1/queues/{queue.name}/groups?limit=1&cursor={page['next_cursor']}").json()
    assert [g["group"] for g in page2["data"]] == ["b"] and page2["next_cursor"] is None


def test_unknown_queue_is_404(api_client):
    for method, path in [("post", "drain"), ("post", "promote"), ("get", "groups"), ("get", "dlq")]:
        response = getattr(api_client, method)(f"/v1/queues/nope/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_draining_the_open_children_releases_their_parent(api_client, workspace):
    parents_queue = make_queue(workspace, "parents")
    children_queue = make_queue(workspace, "children")
    parent = make_job(parents_queue, "delayed", wait_for_children=True)
    make_job(children_queue, "completed", parent=parent)
    make_jobs(children_queue, "waiting", 2, parent=parent)
    assert api_client.post(f"/v1/queues/{children_queue.name}/drain").json() == {"affected": 2}
    parent.refresh_from_db()
    assert parent.state == "waiting"
