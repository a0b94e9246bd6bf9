"""Single-job operations: edit, delete, cancel, retry, promote, children (API.md Jobs)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs.models import Execution, Job
from tests.factories import make_queue

from .helpers import events_of, make_job

pytestmark = pytest.mark.django_db


def url(queue, job, suffix: str = "") -> str:
    return f"/v1/queues/{queue.name}/jobs/{job.id}{suffix}"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- PATCH ----------------------------------------------------------------------------------------


def test_patch_edits_the_four_fields(api_client, queue):
    job = make_job(queue, "waiting", payload={"a": 1})
    body = {"payload": {"b": 2}, "priority": 7, "tags": ["x", "y"]}
    response = api_client.patch(url(queue, job), body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["payload"], data["priority"], data["tags"], data["state"]) == (
        {"b": 2},
        7,
        ["x", "y"],
        "waiting",
    )
    job.refresh_from_db()
    assert (job.payload, job.priority, job.tags) == ({"b": 2}, 7, ["x", "y"])


def test_patch_future_run_at_moves_waiting_to_delayed_and_back(api_client, queue):
    job = make_job(queue, "waiting")
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api_client.patch(url(queue, job), {"run_at": later}, format="json")
    assert response.json()["state"] == "delayed"
    job.refresh_from_db()
    assert job.state == "delayed"
    assert len(events_of(queue, "job:delayed")) == 1
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = api_client.patch(url(queue, job), {"run_at": past}, format="json")
    assert response.json()["state"] == "waiting"
    job.refresh_from_db()
    assert job.state == "waiting"
    assert len(events_of(queue, "job:waiting")) == 1


def test_patch_active_job_is_409(api_client, queue):
    job = make_job(queue, "active", priority=1)
    error = assert_error(
        api_client.patch(url(queue, job), {"priority": 5}, format="json"), 409, "INVALID_STATE"
    )
    assert error["details"] == {"state": "active"}
    job.refresh_from_db()
    assert job.priority == 1


@pytest.mark.parametrize(
    "body,field",
    [
        ({"state": "completed"}, "state"),
        ({"attempts": 0}, "attempts"),
        ({"id": "job_x"}, "id"),
        ({"bogus": 1}, "bogus"),
        ({"priority": 101}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"priority": True}, "priority"),
        ({"tags": ["x"] * 11}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": "x"}, "tags"),
        ({"run_at": "2026-01-01T00:00:00"}, "run_at"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": None}, "run_at"),
    ],
)
def test_patch_rejects_bad_fields(api_client, queue, body, field):
    job = make_job(queue, "waiting", priority=1, tags=["keep"])
    error = assert_error(api_client.patch(url(queue, job), body, format="json"), 400, "VALIDATION_ERROR")
    assert field in error["details"]
    job.refresh_from_db()
    assert (job.priority, job.tags, job.state) == (1, ["keep"], "waiting")


def test_patch_read_only_field_says_so(api_client, queue):
    job = make_job(queue, "waiting")
    error = assert_error(
        api_client.patch(url(queue, job), {"state": "failed"}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert error["details"] == {"state": ["This field is read-only."]}


@override_settings(SPINDLE_MAX_PAYLOAD_BYTES=100)
def test_patch_payload_too_large_is_413(api_client, queue):
    job = make_job(queue, "waiting", payload={"a": 1})
    assert_error(
        api_client.patch(url(queue, job), {"payload": "x" * 200}, format="json"), 413, "PAYLOAD_TOO_LARGE"
    )
    job.refresh_from_db()
    assert job.payload == {"a": 1}


# --- DELETE and cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["waiting", "delayed"])
def test_delete_pending_job_cancels_it(api_client, queue, state):
    job = make_job(queue, state)
    response = api_client.delete(url(queue, job))
    assert response.status_code == 204
    job.refresh_from_db()
    assert job.state == "cancelled" and job.finished_at is not None
    [event] = events_of(queue, "job:removed")
    assert event.job_id == job.id and event.data["cancelled"] is True


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_delete_terminal_job_removes_the_row(api_client, queue, state):
    job = make_job(queue, state)
    Execution.objects.create(
        workspace_id=queue.workspace_id,
        job=job,
        queue=queue,
        attempt=1,
        status="failed",
        started_at=timezone.now(),
    )
    response = api_client.delete(url(queue, job))
    assert response.status_code == 204
    assert not Job.objects.filter(id=job.id).exists()
    assert not Execution.objects.filter(job_id=job.id).exists()
    [event] = events_of(queue, "job:removed")
    assert event.job_id == job.id


def test_delete_active_job_ends_the_lease(api_client, queue):
    job = make_job(queue, "active")
    execution = Execution.objects.create(
        workspace_id=queue.workspace_id,
        job=job,
        queue=queue,
        attempt=1,
        status="running",
        lease_token=job.lease_token,
        started_at=timezone.now(),
    )
    Job.objects.filter(id=job.id).update(execution_id=execution.id)
    response = api_client.delete(url(queue, job))
    assert response.status_code == 204
    job.refresh_from_db()
    assert (job.state, job.lease_token, job.lease_expires_at) == ("cancelled", None, None)
    assert job.cancel_requested is True
    execution.refresh_from_db()
    assert execution.status == "failed" and execution.error["type"] == "cancelled"


@pytest.mark.parametrize("state", ["waiting", "delayed", "active"])
def test_cancel_non_terminal(api_client, queue, state):
    job = make_job(queue, state)
    response = api_client.post(url(queue, job, "/cancel"))
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    job.refresh_from_db()
    assert job.state == "cancelled" and job.lease_token is None and job.finished_at is not None


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_cancel_terminal_is_409(api_client, queue, state):
    job = make_job(queue, state)
    error = assert_error(api_client.post(url(queue, job, "/cancel")), 409, "INVALID_STATE")
    assert error["details"] == {"state": state}
    job.refresh_from_db()
    assert job.state == state
    assert not events_of(queue, "job:removed")


def test_cancelled_active_job_refuses_the_workers_outcome(queue):
    from jobs.services.engine import Outcome, jobs_record_outcomes
    from jobs.services.operations import job_cancel

    job = make_job(queue, "active")
    token = job.lease_token
    job_cancel(workspace=queue.workspace, queue=queue, job_id=job.id)
    assert jobs_record_outcomes(outcomes=[Outcome(job.id, token, kind="success")]) == [job.id]
    job.refresh_from_db()
    assert job.state == "cancelled" and job.result is None


# --- retry and promote ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["failed", "completed", "cancelled"])
def test_retry_terminal_job(api_client, queue, state):
    job = make_job(queue, state, attempts=3)
    response = api_client.post(url(queue, job, "/retry"))
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["state"], data["attempts"], data["result"], data["last_error"]) == ("waiting", 0, None, None)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.finished_at, job.result, job.last_error) == (
        "waiting",
        0,
        None,
        None,
        None,
    )
    assert len(events_of(queue, "job:waiting")) == 1


@pytest.mark.parametrize("state", ["waiting", "delayed", "active"])
def test_retry_non_terminal_is_409(api_client, queue, state):
    job = make_job(queue, state)
    error = assert_error(api_client.post(url(queue, job, "/retry")), 409, "INVALID_STATE")
    assert error["details"] == {"state": state}
    job.refresh_from_db()
    assert job.state == state


def test_promote_delayed(api_client, queue):
    job = make_job(queue, "delayed")
    response = api_client.post(url(queue, job, "/promote"))
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.state == "waiting" and job.run_at <= timezone.now()


@pytest.mark.parametrize("state", ["waiting", "active", "completed", "failed", "cancelled"])
def test_promote_other_states_is_409(api_client, queue, state):
    job = make_job(queue, state)
    error = assert_error(api_client.post(url(queue, job, "/promote")), 409, "INVALID_STATE")
    assert error["details"] == {"state": state}
    job.refresh_from_db()
    assert job.state == state


def test_promote_parent_waiting_for_children_is_409(api_client, queue):
    parent = make_job(queue, "delayed", wait_for_children=True)
    error = assert_error(api_client.post(url(queue, parent, "/promote")), 409, "INVALID_STATE")
    assert error["details"]["state"] == "delayed"
    parent.refresh_from_db()
    assert parent.state == "delayed"


def test_unknown_job_is_404(api_client, queue):
    for method, suffix in [
        ("patch", ""),
        ("delete", ""),
        ("post", "/cancel"),
        ("post", "/retry"),
        ("post", "/promote"),
        ("get", "/children"),
    ]:
        response = getattr(api_client, method)(
            f"/v1/queues/{queue.name}/jobs/job_0000000000nope{suffix}", {}, format="json"
        )
        assert_error(response, 404, "NOT_FOUND")


def test_job_of_another_queue_is_404(api_client, queue, workspace):
    other = make_queue(workspace, "other")
    job = make_job(other, "failed")
    assert_error(api_client.post(url(queue, job, "/retry")), 404, "NOT_FOUND")
    job.refresh_from_db()
    assert job.state == "failed"


# --- flows ----------------------------------------------------------------------------------------


def test_children_of_a_flow_parent(api_client, queue, workspace):
    from jobs.services.enqueue import job_enqueue, job_enqueue_batch
    from jobs.specs import JobSpec

    make_queue(workspace, "side")
    parent, _ = job_enqueue(
        workspace=workspace, queue=queue, spec=JobSpec(payload={"p": 1}, wait_for_children=True)
    )
    children = job_enqueue_batch(
        workspace=workspace,
        queue=queue,
        specs=[JobSpec(payload={"c": i}, parent_id=parent.id) for i in range(3)],
    )
    make_job(queue, "waiting")  # unrelated
    response = api_client.get(url(queue, parent, "/children"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert [c["id"] for c in body["data"]] == [c.id for c, _ in children]
    assert all(c["parent_id"] == parent.id for c in body["data"])
    assert body["next_cursor"] is None
    parent.refresh_from_db()
    assert parent.state == "delayed"
    page = api_client.get(url(queue, parent, "/children?limit=2")).json()
    assert len(page["data"]) == 2 and page["next_cursor"]


def test_cancelling_the_last_open_child_releases_the_parent(api_client, queue, workspace):
    parent = make_job(queue, "delayed", wait_for_children=True)
    make_job(queue, "completed", parent=parent)
    child = make_job(queue, "waiting", parent=parent)
    response = api_client.post(url(queue, child, "/cancel"))
    assert response.status_code == 200
    parent.refresh_from_db()
    assert parent.state == "waiting"


def test_get_job_route_still_reaches_the_jobs_api(api_client, queue):
    # The path is shared with PATCH/DELETE here; GET is served by jobs/urls_jobs.py.
    job = make_job(queue, "waiting")
    response = api_client.get(url(queue, job))
    assert response.status_code == 200, response.content
    assert response.json()["id"] == job.id
