"""Issue 18 point 5: the admin validates as the API does, masks header values, and never answers a 5xx.

Edits are posted through the real change forms (the fields the page renders, as a browser would send them).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.utils import timezone

from accounts.models import Plan, Workspace
from alerts.models import Alert, AlertNotification, WebhookDelivery, WebhookSubscription
from billing.models import StripeEvent
from billing.services import quota_consume
from jobs.models import Execution, Job, Worker
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes
from queues.masking import FULL_MASK
from queues.models import Event, Queue
from schedules.models import Schedule, ScheduleTick
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.215.14/hooks/spindle"  # no DNS in the sandbox: a routable IP literal
SECRET = "Bearer sk_live_abcdefghijklmnop1234"
MASKED = "Bear…1234"
OUR_APPS = {"accounts", "billing", "queues", "jobs", "schedules", "alerts"}


def form_data(page: Any, **changes: Any) -> dict[str, Any]:
    """What a browser posts back from the rendered change form, with `changes` (JSON fields as objects)."""
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = changes[name] if name in changes else form[name].value()
        if isinstance(field.widget, forms.MultiWidget):  # the admin's split date and time
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = "" if part is None else part
            continue
        if isinstance(field, forms.JSONField):
            value = value if isinstance(value, str) and name not in changes else json.dumps(value)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    return data


def change_url(obj: Any) -> str:
    return f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/change/"


@pytest.fixture
def push_queue(api_client) -> Queue:
    body = {
        "name": "hooks",
        "endpoint": {"url": PUBLIC_URL, "headers": {"Authorization": SECRET, "X-Short": "abc"}},
    }
    response = api_client.post("/v1/queues", body, format="json")
    assert response.status_code == 201, response.content
    return Queue.objects.get(name="hooks")


def _post_change(client: Any, obj: Any, **changes: Any) -> Any:
    page = client.get(change_url(obj))
    assert page.status_code == 200
    return client.post(change_url(obj), form_data(page, **changes))


def test_corrupting_queue_edits_are_refused_and_the_customer_keeps_working(
    staff_client, api_client, push_queue
):
    stored = Queue.objects.get(pk=push_queue.pk)
    bad_endpoint = _post_change(staff_client, push_queue, endpoint={"uri": "not-a-url", "timeout_ms": "soon"})
    assert bad_endpoint.status_code == 200
    errors = bad_endpoint.context["adminform"].form.errors
    assert "uri: Unknown field." in str(errors["endpoint"])
    bad_timeout = _post_change(staff_client, push_queue, endpoint={"url": PUBLIC_URL, "timeout_ms": "soon"})
    assert "timeout_ms: A valid integer is required." in str(bad_timeout.context["adminform"].form.errors)

    bad_policy = _post_change(staff_client, push_queue, retry_policy={"max_attempts": -5})
    assert bad_policy.status_code == 200
    assert "max_attempts" in str(bad_policy.context["adminform"].form.errors["retry_policy"])

    short_lease = _post_change(staff_client, push_queue, lease_ms=20_000)  # under timeout_ms + the margin
    assert "lease_ms" in short_lease.context["adminform"].form.errors

    after = Queue.objects.get(pk=push_queue.pk)
    assert (after.endpoint, after.retry_policy, after.lease_ms) == (
        stored.endpoint,
        stored.retry_policy,
        stored.lease_ms,
    )
    assert api_client.post("/v1/queues/hooks/jobs", {"payload": {"n": 1}}, format="json").status_code == 201
    got = api_client.get("/v1/queues/hooks")
    assert got.status_code == 200 and got.json()["endpoint"]["timeout_ms"] == 30_000


def test_a_valid_edit_saves_and_a_masked_header_left_unchanged_keeps_the_secret(staff_client, push_queue):
    page = staff_client.get(change_url(push_queue))
    html = page.content.decode()
    assert SECRET not in html and MASKED in html
    response = staff_client.post(
        change_url(push_queue), form_data(page, concurrency=3, retry_policy={"max_attempts": 7})
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    queue = Queue.objects.get(pk=push_queue.pk)
    assert queue.concurrency == 3
    assert queue.endpoint["headers"] == {"Authorization": SECRET, "X-Short": "abc"}
    assert queue.retry_policy["max_attempts"] == 7 and queue.retry_policy["backoff"] == "exponential"

    # A header given a new value takes it; the other, sent back masked, keeps its stored value.
    endpoint = {
        **queue.endpoint,
        "headers": {"Authorization": "Bearer new-token-0123456789", "X-Short": FULL_MASK},
    }
    assert _post_change(staff_client, queue, endpoint=endpoint).status_code == 302
    assert Queue.objects.get(pk=queue.pk).endpoint["headers"] == {
        "Authorization": "Bearer new-token-0123456789",
        "X-Short": "abc",
    }


def test_api_reads_mask_header_values(api_client, push_queue):
    masked = {"Authorization": MASKED, "X-Short": FULL_MASK}
    assert api_client.get("/v1/queues/hooks").json()["endpoint"]["headers"] == masked
    listed = {q["name"]: q for q in api_client.get("/v1/queues").json()["data"]}
    assert listed["hooks"]["endpoint"]["headers"] == masked
    assert Queue.objects.get(pk=push_queue.pk).endpoint["headers"]["Authorization"] == SECRET


def _ran_job(queue: Queue, attempts: int) -> Job:
    """A job with `attempts` failed executions, the engine's way (claim, then a failure outcome)."""
    (job,) = insert_jobs(
        queue, 1, max_attempts=attempts + 1, http={"url": PUBLIC_URL, "headers": {"X-Key": SECRET}}
    )
    for _ in range(attempts):
        Job.objects.filter(pk=job.pk).update(state="waiting", run_at=timezone.now())  # the retry is due now
        (claimed,) = job_claim(queue=queue, limit=1, lease_ms=60_000)
        jobs_record_outcomes(outcomes=[Outcome(claimed.id, claimed.lease_token, "failure", http_status=500)])
    return Job.objects.get(pk=job.pk)


def test_a_masked_header_read_from_the_api_and_patched_back_keeps_the_secret(api_client, push_queue):
    endpoint = api_client.get(f"/v1/queues/{push_queue.name}").json()["endpoint"]
    assert endpoint["headers"]["Authorization"] != SECRET
    response = api_client.patch(
        f"/v1/queues/{push_queue.name}", {"endpoint": {**endpoint, "timeout_ms": 4000}}, format="json"
    )
    assert response.status_code == 200, response.content
    push_queue.refresh_from_db()
    assert push_queue.endpoint["headers"]["Authorization"] == SECRET
    assert push_queue.endpoint["timeout_ms"] == 4000


def test_job_page_shows_its_executions_newest_first_and_masks_its_http_headers(staff_client, workspace):
    queue = Queue.objects.create(workspace=workspace, name="pull", delivery="pull", signing_secret="whsec_x")
    job = _ran_job(queue, 3)
    page = staff_client.get(change_url(job))
    assert page.status_code == 200
    html = page.content.decode()
    executions = list(Execution.objects.filter(job=job).order_by("-attempt"))
    assert len(executions) == 3
    positions = [html.index(e.id) for e in executions]
    assert positions == sorted(positions)  # newest attempt first
    assert SECRET not in html and MASKED in html
    # The page is a view: a post cannot write a stale copy of the row over the engine's.
    assert staff_client.post(change_url(job), {"priority": 5}).status_code == 403


def test_alert_and_webhook_edits_use_the_api_rules(staff_client, api_client, push_queue):
    alert = api_client.post(
        "/v1/alerts", {"name": "ops", "channel": "email", "target": "ops@example.com"}, format="json"
    )
    assert alert.status_code == 201, alert.content
    alert_row = Alert.objects.get(pk=alert.json()["id"])
    refused = _post_change(staff_client, alert_row, consecutive_failures_threshold=0)
    assert refused.status_code == 200
    assert "consecutive_failures_threshold" in refused.context["adminform"].form.errors
    refused = _post_change(staff_client, alert_row, target="not-an-email")
    assert "target" in refused.context["adminform"].form.errors
    assert _post_change(staff_client, alert_row, cooldown_minutes=5).status_code == 302
    assert Alert.objects.get(pk=alert_row.pk).cooldown_minutes == 5

    hook = api_client.post("/v1/webhooks", {"url": PUBLIC_URL, "events": ["*"]}, format="json")
    assert hook.status_code == 201, hook.content
    hook_row = WebhookSubscription.objects.get(pk=hook.json()["id"])
    refused = _post_change(staff_client, hook_row, events=["nope"], url="ftp://x")
    assert {"events", "url"} <= set(refused.context["adminform"].form.errors)
    assert WebhookSubscription.objects.get(pk=hook_row.pk).events == ["*"]


def test_schedule_edits_use_the_api_validation(staff_client, api_client, push_queue):
    created = api_client.post(
        "/v1/schedules",
        {
            "name": "nightly",
            "queue": "hooks",
            "cron": "0 3 * * *",
            "job": {"http": {"url": PUBLIC_URL, "headers": {"X-Key": SECRET}}},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    schedule = Schedule.objects.get(name="nightly")
    page = staff_client.get(change_url(schedule))
    assert SECRET not in page.content.decode()
    refused = _post_change(staff_client, schedule, cron="every tuesday", timezone="Mars/Olympus")
    assert {"cron", "timezone"} <= set(refused.context["adminform"].form.errors)
    refused = _post_change(staff_client, schedule, job={"retry_policy": {"max_attempts": -5}})
    assert "job" in refused.context["adminform"].form.errors

    assert (
        _post_change(staff_client, schedule, cron=None, interval_ms=60_000, timezone=None).status_code == 302
    )
    saved = Schedule.objects.get(pk=schedule.pk)
    assert (saved.cron, saved.interval_ms, saved.timezone) == (None, 60_000, None)
    assert saved.job["http"]["headers"] == {"X-Key": SECRET}  # the masked template saved unchanged
    assert api_client.get("/v1/schedules/nightly").status_code == 200


@pytest.fixture
def one_of_each(workspace, api_client, push_queue) -> None:
    """At least one row of every model our apps register in the admin."""
    pull = Queue.objects.create(workspace=workspace, name="pull", delivery="pull", signing_secret="whsec_x")
    job = _ran_job(pull, 1)
    Event.objects.create(
        workspace=workspace, type="job:waiting", queue_name="hooks", job_id=job.id, created_at=timezone.now()
    )
    Worker.objects.create(workspace=workspace, name="w1")
    schedule = Schedule.objects.create(
        workspace=workspace, queue=push_queue, name="every", interval_ms=60_000
    )
    ScheduleTick.objects.create(schedule=schedule, tick_at=timezone.now(), created_at=timezone.now())
    alert = Alert.objects.create(workspace=workspace, name="a", channel="email", target="ops@example.com")
    AlertNotification.objects.create(workspace=workspace, alert=alert, kind="test")
    hook = WebhookSubscription.objects.create(
        workspace=workspace, url=PUBLIC_URL, events=["*"], secret="whsec_y"
    )
    WebhookDelivery.objects.create(
        workspace=workspace, subscription=hook, event_id="evt_1", event_type="job:waiting", body="{}"
    )
    quota_consume(workspace=workspace, count=1)
    StripeEvent.objects.create(event_id="evt_stripe", type="invoice.paid", workspace_id=workspace.id)


def test_every_admin_page_answers_200(staff_client, one_of_each):
    for model, model_admin in admin.site._registry.items():
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert staff_client.get(base).status_code == 200, base
        add = staff_client.get(f"{base}add/")
        can_add = model_admin.has_add_permission(add.wsgi_request)
        assert add.status_code == (200 if can_add else 403), base
        row = model._default_manager.first()
        if model._meta.app_label in OUR_APPS:
            assert row is not None, model
        if row is not None:
            assert staff_client.get(change_url(row)).status_code == 200, change_url(row)
    assert {Plan, Workspace, Queue, Job, Execution} <= set(admin.site._registry)


def test_sidebar_says_webhook_deliveries(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert "Webhook deliveries" in html and "deliverys" not in html


def test_job_and_schedule_reads_mask_http_headers_and_a_masked_round_trip_keeps_them(api_client, push_queue):
    job = api_client.post(
        "/v1/queues/hooks/jobs", {"http": {"url": PUBLIC_URL, "headers": {"X-Key": SECRET}}}, format="json"
    )
    assert job.status_code == 201, job.content
    assert job.json()["http"]["headers"] == {"X-Key": MASKED}
    read = api_client.get(f"/v1/queues/hooks/jobs/{job.json()['id']}").json()
    assert read["http"]["headers"] == {"X-Key": MASKED}
    assert Job.objects.get(pk=job.json()["id"]).http["headers"] == {"X-Key": SECRET}

    body = {"name": "nightly", "queue": "hooks", "cron": "0 3 * * *",
            "job": {"http": {"url": PUBLIC_URL, "headers": {"X-Key": SECRET}}}}  # fmt: skip
    assert api_client.post("/v1/schedules", body, format="json").status_code == 201
    template = api_client.get("/v1/schedules/nightly").json()["job"]
    assert template["http"]["headers"] == {"X-Key": MASKED}
    for method in (api_client.patch, api_client.put):
        sent = (
            {"job": {**template, "priority": 5}} if method == api_client.patch else {**body, "job": template}
        )
        response = method("/v1/schedules/nightly", sent, format="json")
        assert response.status_code == 200, response.content
        assert Schedule.objects.get(name="nightly").job["http"]["headers"] == {"X-Key": SECRET}
