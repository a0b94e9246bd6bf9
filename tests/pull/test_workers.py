from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Execution, Job, Worker
from queues.models import Event
from tests.factories import make_queue
from tests.pull.conftest import claim, enqueue

pytestmark = pytest.mark.django_db


def register(client, **body):
    body = {
        "name": "w1",
        "queues": ["work"],
        "hostname": "host-a",
        "concurrency": 4,
        "metadata": {"v": 1},
        **body,
    }
    return client.post("/v1/workers", body, format="json")


def test_register_worker(api_client, workspace):
    response = register(api_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("wkr_")
    assert body["name"] == "w1" and body["queues"] == ["work"] and body["hostname"] == "host-a"
    assert body["concurrency"] == 4 and body["metadata"] == {"v": 1} and body["active_jobs"] == 0
    assert body["created_at"].endswith("Z") and body["last_seen_at"].endswith("Z")
    assert Worker.objects.get(id=body["id"]).workspace_id == workspace.id


def test_register_minimal_worker_defaults(api_client):
    response = api_client.post("/v1/workers", {"name": "solo"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (
        body["queues"] == []
        and body["hostname"] == ""
        and body["concurrency"] == 1
        and body["metadata"] == {}
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "w", "colour": "red"}, "colour"),
        ({"queues": ["a"]}, "name"),
        ({"name": ""}, "name"),
        ({"name": "w", "concurrency": 0}, "concurrency"),
        ({"name": "w", "concurrency": "4"}, "concurrency"),
        ({"name": "w", "queues": "work"}, "queues"),
        ({"name": "w", "queues": ["bad name"]}, "queues"),
        ({"name": "w", "metadata": [1]}, "metadata"),
        ({"name": "w", "hostname": 7}, "hostname"),
    ],
)
def test_register_worker_validation(api_client, body, field):
    response = api_client.post("/v1/workers", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert Worker.objects.count() == 0


def test_register_needs_key(anon_client, plans):
    response = anon_client.post("/v1/workers", {"name": "w"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_list_workers_with_active_counts(api_client, workspace, pull_queue):
    first = register(api_client, name="a").json()
    second = register(api_client, name="b").json()
    enqueue(workspace, pull_queue, 3)
    assert claim(api_client, limit=2, worker_id=first["id"]).status_code == 200
    response = api_client.get("/v1/workers")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next_cursor"] is None
    by_id = {w["id"]: w for w in body["data"]}
    assert [w["id"] for w in body["data"]] == [second["id"], first["id"]]  # newest first
    assert by_id[first["id"]]["active_jobs"] == 2
    assert by_id[second["id"]]["active_jobs"] == 0


def test_list_workers_paginates(api_client):
    ids = [register(api_client, name=f"w{i}").json()["id"] for i in range(3)]
    page = api_client.get("/v1/workers?limit=2").json()
    assert [w["id"] for w in page["data"]] == ids[::-1][:2]
    rest = api_client.get(f"/v1/workers?limit=2&cursor={page['next_cursor']}").json()
    assert [w["id"] for w in rest["data"]] == [ids[0]] and rest["next_cursor"] is None


def test_list_workers_query_count_does_not_grow(api_client, workspace):
    register(api_client, name="a")
    with CaptureQueriesContext(connection) as one:
        assert api_client.get("/v1/workers").status_code == 200
    for i in range(6):
        register(api_client, name=f"more{i}")
    with CaptureQueriesContext(connection) as seven:
        response = api_client.get("/v1/workers")
    assert len(response.json()["data"]) == 7
    assert len(seven.captured_queries) == len(one.captured_queries)


def test_list_hides_other_workspaces(api_client, other_workspace_client):
    register(other_workspace_client, name="theirs")
    assert api_client.get("/v1/workers").json()["data"] == []


def test_worker_heartbeat_updates_last_seen(api_client):
    worker = register(api_client).json()
    Worker.objects.filter(id=worker["id"]).update(
        last_seen_at=Worker.objects.get(id=worker["id"]).last_seen_at - timedelta(hours=1)
    )
    before = Worker.objects.get(id=worker["id"]).last_seen_at
    response = api_client.post(f"/v1/workers/{worker['id']}/heartbeat", format="json")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == worker["id"]
    assert Worker.objects.get(id=worker["id"]).last_seen_at > before + timedelta(minutes=59)


def test_worker_heartbeat_rejects_body_fields(api_client):
    worker = register(api_client).json()
    response = api_client.post(f"/v1/workers/{worker['id']}/heartbeat", {"x": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_other_workspace_worker_is_404(api_client, other_workspace_client):
    theirs = register(other_workspace_client).json()
    seen = Worker.objects.get(id=theirs["id"]).last_seen_at
    response = api_client.post(f"/v1/workers/{theirs['id']}/heartbeat", format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    response = api_client.delete(f"/v1/workers/{theirs['id']}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert Worker.objects.get(id=theirs["id"]).last_seen_at == seen


def test_unknown_worker_is_404(api_client):
    assert api_client.post("/v1/workers/wkr_nope/heartbeat", format="json").status_code == 404
    assert api_client.delete("/v1/workers/wkr_nope").status_code == 404


def test_deregister_releases_leases(api_client, workspace, pull_queue):
    worker = register(api_client).json()
    other = register(api_client, name="other").json()
    enqueue(workspace, pull_queue, 3)
    mine = claim(api_client, limit=2, worker_id=worker["id"]).json()["data"]
    theirs = claim(api_client, limit=1, worker_id=other["id"]).json()["data"]
    response = api_client.delete(f"/v1/workers/{worker['id']}")
    assert response.status_code == 204
    assert not Worker.objects.filter(id=worker["id"]).exists()
    for item in mine:
        job = Job.objects.get(id=item["id"])
        assert job.state == "waiting" and job.lease_token is None and job.worker_id is None
        execution = Execution.objects.get(job_id=item["id"])
        assert execution.status == "timeout" and execution.completed_at is not None
        assert Event.objects.filter(job_id=item["id"], type="job:stalled").exists()
    # The other worker's lease is untouched.
    kept = Job.objects.get(id=theirs[0]["id"])
    assert kept.state == "active" and kept.lease_token == theirs[0]["lease_token"]
    # The old token is fenced off.
    stale = api_client.post(
        f"/v1/queues/work/jobs/{mine[0]['id']}/complete",
        {"lease_token": mine[0]["lease_token"]},
        format="json",
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "LEASE_LOST"
    # Released jobs are claimable again, as a new attempt.
    again = claim(api_client, limit=5).json()["data"]
    assert {j["id"] for j in again} == {j["id"] for j in mine}
    assert all(j["attempts"] == 2 for j in again)


def test_deregister_fails_job_with_no_attempts_left(api_client, workspace):
    queue = make_queue(workspace, "once")
    enqueue(workspace, queue, 1, max_attempts=1)
    worker = register(api_client).json()
    leased = claim(api_client, "once", worker_id=worker["id"]).json()["data"][0]
    assert api_client.delete(f"/v1/workers/{worker['id']}").status_code == 204
    job = Job.objects.get(id=leased["id"])
    assert job.state == "failed" and job.finished_at is not None
    assert Execution.objects.get(job_id=job.id).status == "dead_letter"


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/v1/workers"),
        ("post", "/v1/workers"),
        ("post", "/v1/workers/wkr_x/heartbeat"),
        ("delete", "/v1/workers/wkr_x"),
        ("post", "/v1/queues/work/jobs/claim"),
        ("post", "/v1/queues/work/jobs/ack"),
        ("post", "/v1/queues/work/jobs/job_x/heartbeat"),
        ("post", "/v1/queues/work/jobs/job_x/progress"),
        ("post", "/v1/queues/work/jobs/job_x/complete"),
        ("post", "/v1/queues/work/jobs/job_x/fail"),
    ],
)
def test_every_pull_route_needs_a_key(anon_client, plans, method, path):
    response = getattr(anon_client, method)(path, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_form_encoded_body_is_415(api_client):
    response = api_client.post("/v1/workers", "name=w", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert Worker.objects.count() == 0
