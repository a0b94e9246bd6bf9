"""GET /v1/executions, /v1/executions/{id}, /v1/queues/{name}/jobs/{id}/executions."""

from __future__ import annotations

import pytest

from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def attempts(make_queue):
    q = make_queue("mail")
    insert_jobs(q, 3, max_attempts=3)
    a, b, c = job_claim(queue=q, limit=3, lease_ms=60000)
    jobs_record_outcomes(
        outcomes=[
            Outcome(a.id, a.lease_token, "success", http_status=200, response_body="ok", duration_ms=5),
            Outcome(b.id, b.lease_token, "failure", http_status=500, error={"message": "boom"}),
        ]
    )
    return q, a, b, c


def test_list_filters_and_paginates(api_client, attempts):
    q, a, b, c = attempts
    r = api_client.get("/v1/executions")
    assert r.status_code == 200
    body = r.json()
    assert [e["job_id"] for e in body["data"]] == [c.id, b.id, a.id]  # newest first
    assert body["next_cursor"] is None
    first = body["data"][2]
    assert first["status"] == "success" and first["queue"] == "mail" and first["http_status"] == 200
    assert first["response_body"] == "ok" and first["attempt"] == 1 and first["worker"] is None

    assert [e["job_id"] for e in api_client.get("/v1/executions?status=failed").json()["data"]] == [b.id]
    assert [e["job_id"] for e in api_client.get(f"/v1/executions?job_id={c.id}").json()["data"]] == [c.id]
    assert api_client.get("/v1/executions?queue=nope").json()["data"] == []
    assert len(api_client.get("/v1/executions?queue=mail").json()["data"]) == 3

    page = api_client.get("/v1/executions?limit=2").json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = api_client.get(f"/v1/executions?limit=2&cursor={page['next_cursor']}").json()
    assert [e["job_id"] for e in rest["data"]] == [a.id] and rest["next_cursor"] is None


def test_bad_status_filter_is_400(api_client, attempts):
    r = api_client.get("/v1/executions?status=bogus")
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "status" in r.json()["error"]["details"]


def test_get_one_and_job_executions(api_client, attempts):
    q, a, b, c = attempts
    r = api_client.get(f"/v1/executions/{a.execution_id}")
    assert r.status_code == 200 and r.json()["id"] == a.execution_id and r.json()["status"] == "success"
    r = api_client.get(f"/v1/queues/mail/jobs/{b.id}/executions")
    assert r.status_code == 200
    (exe,) = r.json()["data"]
    assert exe["status"] == "failed" and exe["error"]["message"] == "boom"
    assert api_client.get(f"/v1/queues/other/jobs/{b.id}/executions").json()["error"]["code"] == "NOT_FOUND"
    assert api_client.get("/v1/executions/exe_0000000000").status_code == 404


def test_other_workspace_gets_404_and_empty_lists(other_workspace_client, attempts):
    q, a, b, c = attempts
    r = other_workspace_client.get(f"/v1/executions/{a.execution_id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = other_workspace_client.get(f"/v1/queues/mail/jobs/{a.id}/executions")
    assert r.status_code == 404
    assert other_workspace_client.get("/v1/executions").json()["data"] == []


def test_no_key_is_401(anon_client, attempts):
    r = anon_client.get("/v1/executions")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"


def test_admin_pages_render_with_masked_token(admin_client, attempts):
    q, a, b, c = attempts
    for url in (
        "/admin/jobs/job/",
        "/admin/jobs/execution/",
        "/admin/queues/event/",
        "/admin/jobs/worker/",
        "/admin/queues/queueminutestat/",
    ):
        assert admin_client.get(url).status_code == 200, url
    page = admin_client.get(f"/admin/jobs/job/{c.id}/change/").content.decode()
    assert c.lease_token not in page and c.lease_token[:4] + "…" in page
