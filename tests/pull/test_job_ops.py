"""Heartbeat, progress, complete, fail and batch ack, all fenced by the lease token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services.engine import jobs_sweep
from queues.models import Event
from tests.factories import make_queue
from tests.pull.conftest import claim, claim_one, enqueue

pytestmark = pytest.mark.django_db


def post(client, job_id: str, action: str, body: dict, queue: str = "work"):
    return client.post(f"/v1/queues/{queue}/jobs/{job_id}/{action}", body, format="json")


def snapshot(job_id: str) -> tuple:
    job = Job.objects.get(id=job_id)
    return (
        job.state,
        job.lease_token,
        job.lease_expires_at,
        job.progress,
        job.result,
        job.attempts,
        job.updated_at,
    )


# --- heartbeat ------------------------------------------------------------------------------------


def test_heartbeat_extends_lease(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client, lease_ms=5000)
    response = post(
        api_client, leased["id"], "heartbeat", {"lease_token": leased["lease_token"], "lease_ms": 600000}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["lease_token"] == leased["lease_token"] and body["state"] == "active"
    remaining = (Job.objects.get(id=leased["id"]).lease_expires_at - timezone.now()).total_seconds()
    assert 590 < remaining <= 600


def test_heartbeat_defaults_to_queue_lease(api_client, workspace):
    queue = make_queue(workspace, "work", lease_ms=90000)
    enqueue(workspace, queue, 1)
    leased = claim_one(api_client, lease_ms=5000)
    assert (
        post(api_client, leased["id"], "heartbeat", {"lease_token": leased["lease_token"]}).status_code == 200
    )
    remaining = (Job.objects.get(id=leased["id"]).lease_expires_at - timezone.now()).total_seconds()
    assert 85 < remaining <= 90


def test_heartbeat_with_wrong_token_is_lease_lost(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    before = snapshot(leased["id"])
    response = post(
        api_client, leased["id"], "heartbeat", {"lease_token": "not-the-token", "lease_ms": 600000}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "LEASE_LOST"
    assert snapshot(leased["id"]) == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "lease_token"),
        ({"lease_token": ""}, "lease_token"),
        ({"lease_token": "t", "lease_ms": 10}, "lease_ms"),
        ({"lease_token": "t", "extra": 1}, "extra"),
    ],
)
def test_heartbeat_validation(api_client, workspace, pull_queue, body, field):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(api_client, leased["id"], "heartbeat", body)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_job_routes_404_for_unknown_job_queue_and_other_workspace(
    api_client, other_workspace_and_key, workspace, pull_queue
):
    other_ws = other_workspace_and_key[0]
    theirs_queue = make_queue(other_ws, "work")
    enqueue(other_ws, theirs_queue, 1)
    from tests.conftest import make_client

    theirs = claim_one(make_client(other_workspace_and_key[1].raw))
    before = snapshot(theirs["id"])
    token = {"lease_token": theirs["lease_token"]}
    for action, body in [
        ("heartbeat", token),
        ("progress", {**token, "progress": 5}),
        ("complete", token),
        ("fail", {**token, "error": {"message": "x"}}),
    ]:
        response = post(api_client, theirs["id"], action, body)
        assert response.status_code == 404, (action, response.content)
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert post(api_client, "job_unknown", action, body).status_code == 404
        assert post(api_client, theirs["id"], action, body, queue="nope").status_code == 404
    assert snapshot(theirs["id"]) == before


def test_job_in_another_queue_of_same_workspace_is_404(api_client, workspace, pull_queue):
    other = make_queue(workspace, "other")
    enqueue(workspace, other, 1)
    leased = claim_one(api_client, "other")
    response = post(
        api_client, leased["id"], "complete", {"lease_token": leased["lease_token"]}, queue="work"
    )
    assert response.status_code == 404
    assert Job.objects.get(id=leased["id"]).state == "active"


def test_job_routes_refuse_push_queue(api_client, workspace, push_queue):
    job = enqueue(workspace, push_queue, 1)[0]
    response = post(api_client, job.id, "complete", {"lease_token": "x"}, queue="hooks")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INVALID_STATE"


# --- progress -------------------------------------------------------------------------------------


@pytest.mark.parametrize("progress", [42, 0.5, {"step": 3, "of": 10}])
def test_progress_records_and_emits(api_client, workspace, pull_queue, progress):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(
        api_client, leased["id"], "progress", {"lease_token": leased["lease_token"], "progress": progress}
    )
    assert response.status_code == 200, response.content
    assert response.json()["progress"] == progress
    assert Job.objects.get(id=leased["id"]).progress == progress
    event = Event.objects.get(job_id=leased["id"], type="job:progress")
    assert event.data == {"progress": progress} and event.queue_name == "work"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"progress": True}, "progress"),
        ({"progress": "half"}, "progress"),
        ({}, "progress"),
        ({"progress": [1]}, "progress"),
    ],
)
def test_progress_validation(api_client, workspace, pull_queue, body, field):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(api_client, leased["id"], "progress", {"lease_token": leased["lease_token"], **body})
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert Job.objects.get(id=leased["id"]).progress is None


def test_progress_with_stale_token_changes_nothing(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(api_client, leased["id"], "progress", {"lease_token": "stale", "progress": 50})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "LEASE_LOST"
    assert Job.objects.get(id=leased["id"]).progress is None
    assert not Event.objects.filter(job_id=leased["id"], type="job:progress").exists()


# --- complete and fail ----------------------------------------------------------------------------


def test_complete_with_result(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    body = {"lease_token": leased["lease_token"], "result": {"sent": True}}
    response = post(api_client, leased["id"], "complete", body)
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "completed" and response.json()["result"] == {"sent": True}
    job = Job.objects.get(id=leased["id"])
    assert job.state == "completed" and job.result == {"sent": True} and job.lease_token is None
    assert Execution.objects.get(job_id=job.id).status == "success"
    # A second completion with the same token is stale: the lease ended.
    again = post(api_client, leased["id"], "complete", body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "LEASE_LOST"
    assert Execution.objects.filter(job_id=job.id).count() == 1


def test_complete_rejects_unknown_field(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(api_client, leased["id"], "complete", {"lease_token": leased["lease_token"], "output": 1})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"output": ["Unknown field."]}
    assert Job.objects.get(id=leased["id"]).state == "active"


def test_complete_result_too_large_is_413(api_client, workspace, pull_queue, settings):
    settings.SPINDLE_MAX_PAYLOAD_BYTES = 100
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(
        api_client, leased["id"], "complete", {"lease_token": leased["lease_token"], "result": "x" * 200}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert Job.objects.get(id=leased["id"]).state == "active"


def test_fail_with_retry_schedules_another_attempt(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    body = {
        "lease_token": leased["lease_token"],
        "error": {"message": "smtp down", "type": "SMTPError"},
        "retry": True,
    }
    response = post(api_client, leased["id"], "fail", body)
    assert response.status_code == 200, response.content
    job = Job.objects.get(id=leased["id"])
    assert job.state in ("delayed", "waiting") and job.lease_token is None
    assert job.last_error["message"] == "smtp down" and job.last_error["type"] == "SMTPError"
    assert Execution.objects.get(job_id=job.id).status == "failed"


def test_fail_without_retry_dead_letters(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    body = {"lease_token": leased["lease_token"], "error": {"message": "bad input"}, "retry": False}
    response = post(api_client, leased["id"], "fail", body)
    assert response.status_code == 200, response.content
    job = Job.objects.get(id=leased["id"])
    assert job.state == "failed" and job.finished_at is not None
    assert Execution.objects.get(job_id=job.id).status == "dead_letter"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"error": {"type": "x"}}, "error"),
        ({"error": "boom"}, "error"),
        ({"error": {"message": "x", "stack": "..."}}, "error"),
        ({}, "error"),
        ({"error": {"message": "x"}, "retry": "no"}, "retry"),
    ],
)
def test_fail_validation(api_client, workspace, pull_queue, body, field):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    response = post(api_client, leased["id"], "fail", {"lease_token": leased["lease_token"], **body})
    assert response.status_code == 400
    assert (
        response.json()["error"]["code"] == "VALIDATION_ERROR"
        and field in response.json()["error"]["details"]
    )
    assert Job.objects.get(id=leased["id"]).state == "active"


def test_fail_with_stale_token_is_lease_lost(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    before = snapshot(leased["id"])
    response = post(api_client, leased["id"], "fail", {"lease_token": "stale", "error": {"message": "x"}})
    assert response.status_code == 409 and response.json()["error"]["code"] == "LEASE_LOST"
    assert snapshot(leased["id"]) == before


# --- fencing after a lease expires ----------------------------------------------------------------


def test_expired_lease_releases_and_old_token_is_fenced(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    first = claim_one(api_client, lease_ms=1000)
    # The worker stalls: its lease runs out and the sweeper hands the job back.
    Job.objects.filter(id=first["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert jobs_sweep()["rescued"] == 1
    assert Execution.objects.get(job_id=first["id"], attempt=1).status == "timeout"
    second = claim_one(api_client, lease_ms=60000)
    assert second["id"] == first["id"] and second["lease_token"] != first["lease_token"]
    assert second["attempts"] == 2
    before = snapshot(first["id"])
    old = {"lease_token": first["lease_token"]}
    for action, body in [
        ("heartbeat", old),
        ("progress", {**old, "progress": 99}),
        ("complete", {**old, "result": 1}),
        ("fail", {**old, "error": {"message": "late"}}),
    ]:
        response = post(api_client, first["id"], action, body)
        assert response.status_code == 409, (action, response.content)
        assert response.json()["error"]["code"] == "LEASE_LOST"
    assert snapshot(first["id"]) == before
    ack = api_client.post(
        "/v1/queues/work/jobs/ack", {"completed": [{"id": first["id"], **old}]}, format="json"
    )
    assert ack.json() == {"acked": 0, "lease_lost": [first["id"]]}
    assert snapshot(first["id"]) == before
    # The current holder still finishes normally.
    done = post(api_client, second["id"], "complete", {"lease_token": second["lease_token"], "result": "ok"})
    assert done.status_code == 200 and Job.objects.get(id=first["id"]).result == "ok"
    assert Execution.objects.filter(job_id=first["id"], status="success").count() == 1


# --- batch ack ------------------------------------------------------------------------------------


def test_ack_applies_valid_and_lists_stale(api_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 4)
    leased = claim(api_client, limit=4).json()["data"]
    a, b, c, d = leased
    body = {
        "completed": [
            {"id": a["id"], "lease_token": a["lease_token"], "result": {"n": 1}},
            {"id": b["id"], "lease_token": "stale"},
            {"id": "job_doesnotexist", "lease_token": "x"},
        ],
        "failed": [
            {"id": c["id"], "lease_token": c["lease_token"], "error": {"message": "no"}, "retry": False},
            {"id": d["id"], "lease_token": d["lease_token"], "error": {"message": "again"}},
        ],
    }
    response = api_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"acked": 3, "lease_lost": [b["id"], "job_doesnotexist"]}
    states = dict(Job.objects.values_list("id", "state"))
    assert states[a["id"]] == "completed" and Job.objects.get(id=a["id"]).result == {"n": 1}
    assert states[b["id"]] == "active"
    assert states[c["id"]] == "failed"
    assert states[d["id"]] in ("delayed", "waiting")


def test_ack_empty_is_zero(api_client, pull_queue):
    response = api_client.post("/v1/queues/work/jobs/ack", {}, format="json")
    assert response.status_code == 200 and response.json() == {"acked": 0, "lease_lost": []}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"completed": {"id": "job_x"}}, "completed"),
        ({"completed": [{"id": "job_x"}]}, "completed"),
        ({"completed": [{"id": 5, "lease_token": "t"}]}, "completed"),
        ({"completed": [{"id": "job_x", "lease_token": "t", "error": {}}]}, "completed"),
        ({"failed": [{"id": "job_x", "lease_token": "t"}]}, "failed"),
        ({"failed": [{"id": "job_x", "lease_token": "t", "error": {"message": "m"}, "retry": 1}]}, "failed"),
        (
            {
                "completed": [{"id": "job_x", "lease_token": "t"}],
                "failed": [{"id": "job_x", "lease_token": "t", "error": {"message": "m"}}],
            },
            "failed",
        ),
        ({"done": []}, "done"),
    ],
)
def test_ack_validation_writes_nothing(api_client, workspace, pull_queue, body, field):
    enqueue(workspace, pull_queue, 1)
    leased = claim_one(api_client)
    body = {**body, "completed": body.get("completed", [])}
    if isinstance(body["completed"], list):
        body["completed"] = body["completed"] + [{"id": leased["id"], "lease_token": leased["lease_token"]}]
    response = api_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert response.status_code == 400, response.content
    assert (
        response.json()["error"]["code"] == "VALIDATION_ERROR"
        and field in response.json()["error"]["details"]
    )
    assert Job.objects.get(id=leased["id"]).state == "active"


def test_ack_over_1000_items_is_refused(api_client, pull_queue):
    items = [{"id": f"job_{i:026d}", "lease_token": "t"} for i in range(1001)]
    response = api_client.post("/v1/queues/work/jobs/ack", {"completed": items}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_ack_thousand_in_one_request(api_client, workspace):
    queue = make_queue(workspace, "work", concurrency=1000)
    enqueue(workspace, queue, 1000)
    leased = []
    for _ in range(10):
        leased += claim(api_client, limit=100).json()["data"]
    body = {"completed": [{"id": j["id"], "lease_token": j["lease_token"]} for j in leased]}
    response = api_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert response.json() == {"acked": 1000, "lease_lost": []}
    assert Job.objects.filter(queue=queue, state="completed").count() == 1000
    assert Execution.objects.filter(queue=queue, status="success").count() == 1000


def test_ack_other_workspace_jobs_are_not_touched(api_client, other_workspace_and_key, workspace, pull_queue):
    from tests.conftest import make_client

    other_ws = other_workspace_and_key[0]
    enqueue(other_ws, make_queue(other_ws, "work"), 1)
    theirs = claim_one(make_client(other_workspace_and_key[1].raw))
    body = {"completed": [{"id": theirs["id"], "lease_token": theirs["lease_token"]}]}
    response = api_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert response.json() == {"acked": 0, "lease_lost": [theirs["id"]]}
    assert Job.objects.get(id=theirs["id"]).state == "active"


def test_ack_on_push_queue_and_unknown_queue(api_client, push_queue):
    assert api_client.post("/v1/queues/hooks/jobs/ack", {}, format="json").status_code == 409
    assert api_client.post("/v1/queues/nope/jobs/ack", {}, format="json").status_code == 404
