"""Seed 001 (Spooled) gaps: `POST /v1/jobs` with the queue in the body, and `GET /v1/jobs/{id}`."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.factories import make_queue

pytestmark = pytest.mark.django_db


def test_post_jobs_enqueues_into_the_named_queue(api_client, workspace):
    queue = make_queue(workspace, "emails")
    response = api_client.post(
        "/v1/jobs",
        {"queue": "emails", "name": "send", "payload": {"to": "a@b.c"}, "tags": ["t"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["queue"] == "emails" and body["name"] == "send" and body["state"] == "waiting"
    job = Job.objects.get(pk=body["id"])
    assert job.queue_id == queue.id and job.payload == {"to": "a@b.c"}


def test_post_jobs_body_idempotency_key_returns_the_same_job(api_client, workspace):
    make_queue(workspace, "emails")
    first = api_client.post("/v1/jobs", {"queue": "emails", "idempotency_key": "k1"}, format="json")
    again = api_client.post("/v1/jobs", {"queue": "emails", "idempotency_key": "k1"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Job.objects.count() == 1


def test_post_jobs_idempotency_key_header_replays(api_client, workspace):
    make_queue(workspace, "emails")
    headers = {"HTTP_IDEMPOTENCY_KEY": "abc"}
    first = api_client.post("/v1/jobs", {"queue": "emails"}, format="json", **headers)
    again = api_client.post("/v1/jobs", {"queue": "emails"}, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    reused = api_client.post("/v1/jobs", {"queue": "emails", "priority": 3}, format="json", **headers)
    assert reused.status_code == 422
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "VALIDATION_ERROR"),
        ({"queue": 7}, 400, "VALIDATION_ERROR"),
        ({"queue": "nope"}, 404, "NOT_FOUND"),
        ({"queue": "emails", "priority": 1000}, 400, "VALIDATION_ERROR"),
        ({"queue": "emails", "bogus": 1}, 400, "VALIDATION_ERROR"),
    ],
)
def test_post_jobs_refuses_bad_bodies(api_client, workspace, body, status, code):
    make_queue(workspace, "emails")
    response = api_client.post("/v1/jobs", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert Job.objects.count() == 0


def test_post_jobs_into_another_workspaces_queue_is_404(other_workspace_client, workspace):
    make_queue(workspace, "emails")
    response = other_workspace_client.post("/v1/jobs", {"queue": "emails"}, format="json")
    assert response.status_code == 404
    assert Job.objects.count() == 0


def test_get_job_by_id_whatever_the_queue(api_client, other_workspace_client, workspace):
    make_queue(workspace, "emails")
    job_id = api_client.post("/v1/jobs", {"queue": "emails", "payload": 1}, format="json").json()["id"]
    response = api_client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json()["id"] == job_id and response.json()["queue"] == "emails"
    assert other_workspace_client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert api_client.get("/v1/jobs/job_doesnotexist").status_code == 404
