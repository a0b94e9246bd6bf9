"""The /api/v1 surface in-process: Spooled's error body, paging headers, the quota mapping, route order, the
root health aliases, and its absence from the OpenAPI document (which describes /v1 only)."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import call_command

from accounts.models import Plan
from jobs.models import Job
from tests.billing.test_stripe import fake_stripe, stripe_on  # noqa: F401  (fixtures)
from tests.conftest import make_client
from tests.ratewindow import fresh_window

pytestmark = pytest.mark.django_db


def test_errors_have_spooled_shape_and_request_id(api_client) -> None:
    response = api_client.get("/api/v1/jobs/job_missing")
    assert response.status_code == 404
    assert response.json() == {"code": "NOT_FOUND", "message": "Job 'job_missing' not found.", "details": {}}
    assert response["X-Request-Id"]
    invalid = api_client.post(
        "/api/v1/jobs", {"queue_name": "q", "payload": 1, "priority": "high"}, format="json"
    )
    assert (invalid.status_code, invalid.json()["code"]) == (422, "VALIDATION_ERROR")
    assert invalid.json()["details"] == {"priority": ["Expected an integer from -100 to 100."]}
    assert api_client.post("/api/v1/jobs", "[1]", content_type="application/json").status_code == 422


def test_lists_are_bare_arrays_with_x_has_more(api_client) -> None:
    for n in range(3):
        assert (
            api_client.post("/api/v1/jobs", {"queue_name": "q", "payload": n}, format="json").status_code
            == 201
        )
    first = api_client.get("/api/v1/jobs?limit=2")
    assert isinstance(first.json(), list) and len(first.json()) == 2 and first["X-Has-More"] == "true"
    rest = api_client.get("/api/v1/jobs?limit=2&offset=2")
    assert len(rest.json()) == 1 and rest["X-Has-More"] == "false"
    assert api_client.get("/api/v1/jobs?offset=-1").status_code == 422


def test_quota_is_429_quota_exceeded_without_retry_after(api_client, workspace) -> None:
    Plan.objects.filter(code=workspace.plan_id).update(jobs_per_month=1)
    assert (
        api_client.post("/api/v1/jobs", {"queue_name": "q", "payload": 1}, format="json").status_code == 201
    )
    refused = api_client.post("/api/v1/jobs", {"queue_name": "q", "payload": 2}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (429, "QUOTA_EXCEEDED")
    assert "Retry-After" not in refused
    assert Job.objects.count() == 1


def test_a_queue_first_named_here_is_a_pull_queue_and_push_queues_stay_push(api_client) -> None:
    api_client.post("/api/v1/jobs", {"queue_name": "fresh", "payload": {}}, format="json")
    assert Job.objects.get().queue.delivery == "pull"
    push = api_client.post("/v1/queues", {"name": "pushy"}, format="json")
    assert push.status_code == 201
    api_client.post("/api/v1/jobs", {"queue_name": "pushy", "payload": {}}, format="json")
    worker = api_client.post(
        "/api/v1/workers/register", {"queue_name": "fresh", "hostname": "h"}, format="json"
    )
    claim = api_client.post(
        "/api/v1/jobs/claim", {"queue_name": "pushy", "worker_id": worker.json()["id"]}, format="json"
    )
    # A push queue's jobs belong to the delivery engine: no worker claims them, none registers for it.
    assert (claim.status_code, claim.json()["code"]) == (409, "INVALID_STATE")
    assert Job.objects.filter(queue__name="pushy", state="waiting").count() == 1
    refused = api_client.post(
        "/api/v1/workers/register", {"queue_name": "pushy", "hostname": "h"}, format="json"
    )
    assert refused.status_code == 409


def test_static_routes_win_over_id_routes(api_client) -> None:
    assert api_client.get("/api/v1/jobs/stats").status_code == 200
    assert api_client.get("/api/v1/jobs/dlq").json() == []
    assert api_client.get("/api/v1/webhooks/deliveries").json() == []


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_root_health_aliases_answer_get_and_head(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (200, 503)
    body = response.json()
    assert body["status"] == ("healthy" if response.status_code == 200 else "unhealthy")
    assert "uptime_seconds" in body
    assert client.head(path).status_code == response.status_code


def test_health_reports_database_and_cache(client) -> None:
    body = client.get("/health").json()
    assert (body["status"], body["database"], body["cache"]) == ("healthy", True, True)


def test_api_v1_is_not_in_the_openapi_document() -> None:
    out = StringIO()
    call_command("spectacular", stdout=out)
    paths = yaml.safe_load(out.getvalue())["paths"]
    assert paths and not [p for p in paths if p.startswith("/api/v1") or p.startswith("/health")]


def test_a_key_with_its_own_rate_limit_is_held_to_it_on_both_surfaces(api_client) -> None:
    created = api_client.post("/api/v1/api-keys", {"name": "slow", "rate_limit": 2}, format="json")
    assert created.status_code == 201 and created.json()["rate_limit"] == 2
    fresh_window(created.json()["id"], needed_s=3)  # the key's own one-minute window
    limited = make_client(created.json()["key"])
    assert limited.get("/api/v1/jobs").status_code == 200
    assert limited.get("/v1/jobs").status_code == 200
    refused = limited.get("/api/v1/jobs")
    assert (refused.status_code, refused.json()["code"]) == (429, "RATE_LIMITED")
    assert limited.get("/v1/jobs").status_code == 429
    assert api_client.get("/api/v1/jobs").status_code == 200  # the workspace's other keys are not held


def test_bad_api_key_inputs(api_client) -> None:
    past = api_client.post(
        "/api/v1/api-keys", {"name": "old", "expires_at": "2020-01-01T00:00:00Z"}, format="json"
    )
    assert past.status_code == 422 and "expires_at" in past.json()["details"]
    bad_queue = api_client.post("/api/v1/api-keys", {"name": "q", "queues": ["no spaces"]}, format="json")
    assert bad_queue.status_code == 422
    assert api_client.put("/api/v1/api-keys/key_nope", {"name": "x"}, format="json").status_code == 404


def test_billing_portal_through_stripe_faked_at_its_http_boundary(api_client, stripe_on) -> None:  # noqa: F811
    portal = api_client.post(
        "/api/v1/billing/portal", {"return_url": "https://example.com/back"}, format="json"
    )
    assert portal.status_code == 200 and portal.json()["url"].startswith("https://")
    assert stripe_on.paths() == ["/v1/customers", "/v1/billing_portal/sessions"]
    status = api_client.get("/api/v1/billing/status").json()
    assert status["has_stripe_customer"] is True
    assert api_client.post("/api/v1/billing/portal", {}, format="json").status_code == 422


def test_organizations_are_the_workspace(api_client, workspace) -> None:
    listed = api_client.get("/api/v1/organizations").json()
    assert [o["id"] for o in listed] == [workspace.id]
    assert api_client.get(f"/api/v1/organizations/{workspace.id}").json()["plan_tier"] == workspace.plan_id
    assert api_client.get("/api/v1/organizations/wsp_other").status_code == 404
    members = api_client.get(f"/api/v1/organizations/{workspace.id}/members").json()
    assert [m["role"] for m in members] == (["owner"] if workspace.owner_id else [])


def test_list_filters_in_spooled_words(api_client) -> None:
    for body in ({"payload": {"job_type": "email.send"}}, {"payload": {"job_type": "sms"}}, {"payload": 3}):
        api_client.post("/api/v1/jobs", {"queue_name": "mixed", **body}, format="json")
    assert [j["job_type"] for j in api_client.get("/api/v1/jobs?job_type=sms").json()] == ["sms"]
    assert [j["job_type"] for j in api_client.get("/api/v1/jobs?q=EMAIL").json()] == ["email.send"]
    assert len(api_client.get("/api/v1/jobs?q=mix").json()) == 3
    oldest_first = api_client.get("/api/v1/jobs?order_by=created_at&order_dir=asc").json()
    assert [j["job_type"] for j in oldest_first] == ["email.send", "sms", ""]
    assert api_client.get("/api/v1/jobs?order_by=payload").status_code == 422
    assert api_client.get("/api/v1/jobs?created_after=yesterday").status_code == 422
