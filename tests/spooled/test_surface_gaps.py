"""Two gaps a review of every SDK call found on /api/v1: `organizations.get_usage()` (GET
/api/v1/organizations/usage) fell into the `organizations/{org_id}` route, and an unsafe method on an unknown path
got Django's HTML CSRF page (403, which the SDK raises as AuthorizationError) instead of Spooled's JSON 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import Workspace
from alerts.models import WebhookSubscription
from jobs.models import Worker
from tests.factories import ApiKeyFactory, ScheduleFactory, insert_jobs, make_queue
from tests.spooled.sdk_alias import sdk

errors = sdk.errors
UsageInfo = sdk.types.UsageInfo
# Spooled types some limits as required integers (u32): "no limit" is sent as its largest value.
NO_LIMIT = 2**32 - 1


def _no_route(path: str) -> dict:
    return {"code": "NOT_FOUND", "message": f"No route {path}.", "details": {}}


def _webhook(workspace: Workspace, n: int) -> None:
    WebhookSubscription.objects.create(
        workspace=workspace, url=f"https://93.184.215.14/hook/{n}", events=["*"], secret="whsec_eA=="
    )


@pytest.mark.django_db
def test_organizations_usage_reports_the_plan_and_what_counts_against_it(api_client, workspace) -> None:
    for n in range(3):  # through the API, so the month's quota counts them
        created = api_client.post("/api/v1/jobs", {"queue_name": "mail", "payload": n}, format="json")
        assert created.status_code == 201
    queue = make_queue(workspace, "a")
    make_queue(workspace, "b")
    make_queue(workspace, "c")
    insert_jobs(queue, 1, state="active", ran=True)
    insert_jobs(queue, 2, state="completed", ran=True)  # finished: not active
    ScheduleFactory(queue=queue)
    Worker.objects.create(workspace=workspace, name="w1", queues=["mail"])
    ApiKeyFactory(workspace=workspace)
    _webhook(workspace, 1)
    _webhook(workspace, 2)

    response = api_client.get("/api/v1/organizations/usage")

    assert response.status_code == 200
    body = response.json()
    UsageInfo.model_validate(body)  # the SDK's own response model
    assert (body["plan"], body["plan_display_name"]) == ("free", "Free")
    assert body["limits"] == {
        "tier": "free",
        "display_name": "Free",
        "max_jobs_per_day": 10_000,  # the month's quota: Spindle meters jobs per calendar month
        "jobs_window": "month",
        "max_active_jobs": None,
        "max_queues": 5,
        "max_workers": None,
        "max_api_keys": None,
        "max_schedules": 5,
        "max_workflows": 0,
        "max_webhooks": 2,
        "max_payload_size_bytes": 1024 * 1024,
        "rate_limit_requests_per_second": 1,
        "rate_limit_burst": 60,
        "job_retention_days": 7,
        "history_retention_days": 7,
    }
    usage = body["usage"]
    status = api_client.get("/v1/status").json()["quota"]["jobs"]
    assert usage["jobs_today"] == {
        "current": 3,
        "limit": 10_000,
        "percentage": 0.03,
        "is_disabled": False,
        "resets_at": status["resets_at"],
    }
    assert (status["used"], status["limit"]) == (3, 10_000)  # the same numbers as /v1/status
    current = {name: (item["current"], item["limit"], item["is_disabled"]) for name, item in usage.items()}
    assert current == {
        "jobs_today": (3, 10_000, False),
        "active_jobs": (4, None, False),
        "queues": (4, 5, False),
        "workers": (1, None, False),
        "api_keys": (2, None, False),
        "schedules": (1, 5, False),
        "workflows": (0, 0, True),
        "webhooks": (2, 2, False),
    }
    assert body["warnings"] == [
        {"resource": "queues", "message": "Queues: 4 of 5 (80%).", "severity": "warning"},
        {"resource": "webhooks", "message": "Webhooks: the limit of 2 is reached.", "severity": "critical"},
    ]


@pytest.mark.django_db
def test_usage_on_an_unlimited_plan_still_fits_the_sdk_model(api_client, workspace) -> None:
    Workspace.objects.filter(pk=workspace.pk).update(plan_id="enterprise")

    body = api_client.get("/api/v1/organizations/usage").json()

    info = UsageInfo.model_validate(body)
    assert (info.plan, info.plan_display_name) == ("enterprise", "Enterprise")
    limits = info.limits
    assert limits.rate_limit_requests_per_second == limits.rate_limit_burst == NO_LIMIT
    assert limits.job_retention_days == limits.history_retention_days == NO_LIMIT
    assert limits.max_jobs_per_day is None and limits.max_queues is None
    assert info.usage.jobs_today.limit is None and info.usage.jobs_today.percentage is None
    assert info.warnings == []


@pytest.mark.django_db
def test_usage_is_the_callers_own_and_needs_a_credential(
    api_client, other_workspace_client, anon_client
) -> None:
    api_client.post("/api/v1/jobs", {"queue_name": "mail", "payload": 1}, format="json")
    other = other_workspace_client.get("/api/v1/organizations/usage").json()["usage"]
    assert other["jobs_today"]["current"] == 0 and other["queues"]["current"] == 0
    refused = anon_client.get("/api/v1/organizations/usage")
    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHORIZED")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/organizations/check-slug"), ("post", "/api/v1/organizations/generate-slug")],
)
def test_slug_helpers_are_unknown_routes_not_organization_ids(api_client, method: str, path: str) -> None:
    # Spooled Cloud's sign-up helpers: Spindle creates workspaces through /v1, so these are not served.
    response = getattr(api_client, method)(path, {"slug": "acme", "name": "Acme"}, format="json")
    assert (response.status_code, response.json()) == (404, _no_route(path))


@pytest.mark.django_db
@pytest.mark.parametrize("with_key", [True, False])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-route", "/api/v1/workflows", "/api/v1/jobs/job_1/dependencies"]
)
def test_unknown_routes_answer_spooled_404_for_unsafe_methods_too(
    api_key: str, with_key: bool, method: str, path: str
) -> None:
    client = APIClient(enforce_csrf_checks=True)  # CSRF checked as for a real client: no cookie, no token
    if with_key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = getattr(client, method)(path, {"name": "x"}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == _no_route(path)


@pytest.mark.django_db
def test_csrf_still_guards_the_dashboard_and_the_admin(plans) -> None:
    client = APIClient(enforce_csrf_checks=True)
    for path in ("/login", "/admin/login/"):
        response = client.post(path, {"username": "u", "password": "p"})
        assert response.status_code == 403, path


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_sdk_reads_usage_and_gets_not_found_for_the_slug_helpers(spooled_client) -> None:
    spooled_client.jobs.create({"queue_name": "mail", "payload": {}})

    usage = spooled_client.organizations.get_usage()

    assert (usage.plan, usage.plan_display_name, usage.limits.tier) == ("pro", "Pro", "pro")
    jobs = usage.usage.jobs_today
    assert (jobs.current, jobs.limit, jobs.is_disabled) == (1, 100_000, False)
    assert (usage.usage.queues.current, usage.usage.queues.limit) == (1, 50)
    assert usage.usage.active_jobs.current == 1 and usage.usage.workflows.is_disabled
    assert usage.limits.rate_limit_requests_per_second == 5 and usage.warnings == []
    with pytest.raises(errors.NotFoundError):
        spooled_client.organizations.check_slug("acme")
    with pytest.raises(errors.NotFoundError) as raised:
        spooled_client.organizations.generate_slug("Acme")  # a POST to an unknown route: JSON, no CSRF page
    assert raised.value.code == "NOT_FOUND"
