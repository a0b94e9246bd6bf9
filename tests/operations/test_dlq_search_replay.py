"""Dead-letter queue, search and replay."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services import operations as ops
from tests.factories import make_queue

from .helpers import events_of, make_job, make_jobs

pytestmark = pytest.mark.django_db


# --- DLQ ------------------------------------------------------------------------------------------


def test_dlq_lists_failed_jobs_newest_first(api_client, queue):
    failed = make_jobs(queue, "failed", 3)
    make_jobs(queue, "completed", 2)
    response = api_client.get(f"/v1/queues/{queue.name}/dlq")
    assert response.status_code == 200
    body = response.json()
    assert [j["id"] for j in body["data"]] == list(reversed(failed))
    assert all(j["state"] == "failed" and j["queue"] == queue.name for j in body["data"])
    page = api_client.get(f"/v1/queues/{queue.name}/dlq?limit=2").json()
    assert [j["id"] for j in page["data"]] == [failed[2], failed[1]]
    rest = api_client.get(f"/v1/queues/{queue.name}/dlq?limit=2&cursor={page['next_cursor']}").json()
    assert [j["id"] for j in rest["data"]] == [failed[0]] and rest["next_cursor"] is None


def test_dlq_list_bad_limit_is_400(api_client, queue):
    response = api_client.get(f"/v1/queues/{queue.name}/dlq?limit=1001")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_dlq_retry_some(api_client, queue):
    failed = make_jobs(queue, "failed", 3)
    done = make_job(queue, "completed")
    response = api_client.post(
        f"/v1/queues/{queue.name}/dlq/retry", {"ids": [failed[0], failed[2], done.id]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"affected": 2}
    got = dict(Job.objects.filter(queue=queue).values_list("id", "state"))
    assert got == {failed[0]: "waiting", failed[1]: "failed", failed[2]: "waiting", done.id: "completed"}
    assert Job.objects.get(id=failed[0]).attempts == 0


def test_dlq_retry_all_with_empty_body(api_client, queue):
    make_jobs(queue, "failed", 4)
    response = api_client.post(f"/v1/queues/{queue.name}/dlq/retry")
    assert response.status_code == 200
    assert response.json() == {"affected": 4}
    assert set(Job.objects.filter(queue=queue).values_list("state", flat=True)) == {"waiting"}


@pytest.mark.parametrize("body", [{"ids": "job_x"}, {"ids": [1]}, {"ids": ["job_a"] * 1001}, {"other": 1}])
def test_dlq_retry_bad_body(api_client, queue, body):
    make_job(queue, "failed")
    response = api_client.post(f"/v1/queues/{queue.name}/dlq/retry", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert Job.objects.get(queue=queue).state == "failed"


def test_dlq_purge_in_batches(api_client, queue, monkeypatch):
    make_jobs(queue, "failed", 25)
    keep = make_job(queue, "completed")
    monkeypatch.setattr(ops, "BATCH_SIZE", 10)
    with CaptureQueriesContext(connection) as queries:
        response = api_client.delete(f"/v1/queues/{queue.name}/dlq")
    assert response.status_code == 200
    assert response.json() == {"affected": 25}
    assert list(Job.objects.filter(queue=queue).values_list("id", flat=True)) == [keep.id]
    assert len(events_of(queue, "job:removed")) == 25
    assert len([q for q in queries.captured_queries if "FOR UPDATE SKIP LOCKED" in q["sql"]]) == 3


# --- search ---------------------------------------------------------------------------------------


def test_search_job_by_exact_id(api_client, queue):
    job = make_job(queue, "waiting")
    make_job(queue, "waiting")
    body = api_client.get(f"/v1/search?q={job.id}&type=job").json()
    assert [j["id"] for j in body["data"]] == [job.id]
    assert api_client.get(f"/v1/search?q={job.id[:-2]}&type=job").json()["data"] == []


def test_search_queue_by_name_substring(api_client, workspace, queue):
    make_queue(workspace, "email-digest")
    make_queue(workspace, "billing")
    response = api_client.get("/v1/search?q=EMAIL&type=queue")
    assert response.status_code == 200
    names = sorted(q["name"] for q in response.json()["data"])
    assert names == ["email-digest", "emails"]
    assert "delivery" in response.json()["data"][0]


def test_search_payload_within_one_queue(api_client, workspace, queue):
    hit = make_job(queue, "waiting", payload={"to": "Ada@example.com", "n": 1})
    make_job(queue, "waiting", payload={"to": "bob@example.com"})
    other = make_queue(workspace, "other")
    make_job(other, "waiting", payload={"to": "ada@example.com"})
    response = api_client.get(f"/v1/search?q=ada@&type=payload&queue={queue.name}")
    assert response.status_code == 200
    assert [j["id"] for j in response.json()["data"]] == [hit.id]


def test_search_payload_treats_wildcards_literally(api_client, queue):
    make_job(queue, "waiting", payload={"code": "abc"})
    hit = make_job(queue, "waiting", payload={"code": "a%c"})
    body = api_client.get(f"/v1/search?q=a%25c&type=payload&queue={queue.name}").json()
    assert [j["id"] for j in body["data"]] == [hit.id]


def test_search_payload_needs_a_queue(api_client, queue):
    make_job(queue, "waiting", payload={"x": "y"})
    response = api_client.get("/v1/search?q=y&type=payload")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("query", ["q=x&type=bogus", "type=job", "q=&type=queue"])
def test_search_bad_parameters(api_client, query):
    response = api_client.get(f"/v1/search?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_search_never_returns_another_workspace(other_workspace_client, workspace, queue):
    job = make_job(queue, "waiting", payload={"secret": "zzz"})
    assert other_workspace_client.get(f"/v1/search?q={job.id}&type=job").json()["data"] == []
    assert other_workspace_client.get("/v1/search?q=emails&type=queue").json()["data"] == []
    response = other_workspace_client.get(f"/v1/search?q=zzz&type=payload&queue={queue.name}")
    assert response.status_code == 404


# --- replay ---------------------------------------------------------------------------------------


def test_replay_enqueues_a_copy_linked_to_the_execution(api_client, workspace):
    queue = make_queue(workspace, "hooks", delivery="push")
    http = {"url": "https://example.com/hook", "method": "POST", "headers": {}, "body": "{}"}
    job = make_job(queue, "failed", name="send", payload={"a": 1}, tags=["t"], http=http)
    execution = Execution.objects.create(
        workspace=workspace, job=job, queue=queue, attempt=1, status="dead_letter", started_at=timezone.now()
    )
    response = api_client.post(f"/v1/executions/{execution.id}/replay")
    assert response.status_code == 202, response.content
    new = response.json()["job"]
    assert new["id"] != job.id
    assert (new["queue"], new["name"], new["payload"], new["tags"], new["http"]) == (
        "hooks",
        "send",
        {"a": 1},
        ["t"],
        http,
    )
    assert new["replay_of"] == execution.id and new["state"] == "waiting"
    stored = Job.objects.get(id=new["id"])
    assert stored.replay_of == execution.id and stored.queue_id == queue.id
    job.refresh_from_db()
    assert job.state == "failed"


def test_replay_of_a_running_execution_is_refused(api_client, workspace):
    queue = make_queue(workspace, "emails")
    job = make_job(queue, "active")
    execution = Execution.objects.create(
        workspace=workspace, job=job, queue=queue, attempt=1, status="running", started_at=timezone.now()
    )
    response = api_client.post(f"/v1/executions/{execution.id}/replay")
    assert response.status_code == 409, response.content
    assert (
        response.json()["error"]["message"]
        == "This execution is still running; replay it once it has finished."
    )
    assert Job.objects.filter(queue=queue).count() == 1


def test_replay_unknown_or_foreign_execution_is_404(api_client, other_workspace_client, workspace):
    queue = make_queue(workspace, "emails")
    job = make_job(queue, "failed")
    execution = Execution.objects.create(
        workspace=workspace, job=job, queue=queue, attempt=1, status="failed", started_at=timezone.now()
    )
    response = other_workspace_client.post(f"/v1/executions/{execution.id}/replay")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert api_client.post("/v1/executions/exe_0000000000nope/replay").status_code == 404
    assert Job.objects.filter(queue=queue).count() == 1
