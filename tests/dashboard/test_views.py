"""Dashboard views without a browser: CSRF, workspace isolation and the event feed under WSGI."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import workspace_create
from queues.models import Queue
from tests.factories import make_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(workspace_and_key) -> Client:
    client = Client()
    response = client.post("/login", {"method": "api_key", "api_key": workspace_and_key[1].raw})
    assert response.status_code == 302 and response["Location"] == "/"
    return client


def test_actions_need_the_csrf_token(workspace, workspace_and_key):
    make_queue(workspace, "emails")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login")
    token = page.cookies["csrftoken"].value
    login = client.post(
        "/login", {"method": "api_key", "api_key": workspace_and_key[1].raw, "csrfmiddlewaretoken": token}
    )
    assert login.status_code == 302
    assert client.post("/queues/emails/pause").status_code == 403
    assert Queue.objects.get(name="emails").paused is False


def test_another_workspaces_queue_is_not_found_and_untouched(signed_in, plans):
    other, _ = workspace_create(name="other")
    theirs = make_queue(other, "theirs")
    response = signed_in.post("/queues/theirs/pause", follow=True)
    assert "Queue &#x27;theirs&#x27; not found." in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.paused is False
    assert signed_in.get("/queues/theirs/dlq").status_code == 404


def test_login_next_never_leaves_the_site(workspace_and_key):
    client = Client()
    response = client.post(
        "/login", {"method": "api_key", "api_key": workspace_and_key[1].raw, "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_event_feed_under_wsgi_answers_204(signed_in):
    # gunicorn would hold a thread for the endless stream; EventSource stops on 204 and pages poll instead.
    assert signed_in.get("/events").status_code == 204
    assert Client().get("/events").status_code == 401


def test_csrf_failure_renders_a_dashboard_page_and_the_admin_keeps_djangos(workspace, workspace_and_key):
    make_queue(workspace, "emails")
    client = Client(enforce_csrf_checks=True)
    token = client.get("/login").cookies["csrftoken"].value
    client.post(
        "/login", {"method": "api_key", "api_key": workspace_and_key[1].raw, "csrfmiddlewaretoken": token}
    )
    response = client.post("/queues/emails/pause")
    assert response.status_code == 403 and response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "This form has expired" in body and 'id="error"' in body and "Sign out" in body
    admin = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x", "password": "y"})
    assert admin.status_code == 403 and "This form has expired" not in admin.content.decode()


def test_dashboard_404s_are_pages_and_api_404s_stay_json(signed_in):
    for path in ("/nope", "/queues/nope", "/schedules/nope", "/webhooks/wh_000000000000000000nope"):
        response = signed_in.get(path)
        assert response.status_code == 404 and "Not found" in response.content.decode(), path
        assert response["Content-Type"].startswith("text/html"), path
    api = signed_in.get("/v1/nope")
    assert api.status_code == 404 and api.json()["error"]["code"] == "NOT_FOUND"


def test_replay_of_a_running_execution_is_refused_with_a_message(signed_in, workspace):
    from django.utils import timezone

    from jobs.models import Execution, Job
    from jobs.services.enqueue import job_enqueue
    from jobs.specs import JobSpec

    queue = make_queue(workspace, "emails")
    job, _ = job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="x"))
    running = Execution.objects.create(
        workspace=workspace, job=job, queue=queue, attempt=1, status="running", started_at=timezone.now()
    )
    response = signed_in.post(f"/executions/{running.id}/replay", follow=True)
    assert "still running; replay it once it has finished" in response.content.decode()
    assert Job.objects.filter(queue=queue).count() == 1


def test_workspace_a_never_sees_or_acts_on_bs_objects_by_url(signed_in, workspace, plans, settings):
    """The isolation matrix for dashboard routes: B's queue, job, schedule, alert, webhook and key."""
    from accounts.models import ApiKey
    from alerts.models import Alert, WebhookSubscription
    from alerts.services import alert_create, webhook_create
    from jobs.models import Job
    from jobs.services.enqueue import job_enqueue
    from jobs.specs import JobSpec
    from schedules.models import Schedule
    from schedules.services import schedule_create

    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    other, other_key = workspace_create(name="other")
    queue = make_queue(other, "theirs")
    job, _ = job_enqueue(workspace=other, queue=queue, spec=JobSpec(name="secret"))
    schedule_create(workspace=other, data={"name": "their-cron", "queue": "theirs", "cron": "0 3 * * *"})
    alert, _ = alert_create(
        workspace=other, data={"name": "a", "channel": "email", "target": "b@example.com"}
    )
    hook, _ = webhook_create(workspace=other, data={"url": "http://127.0.0.1:9/h", "events": ["*"]})
    reads = [
        "/queues/theirs",
        "/queues/theirs/dlq",
        f"/queues/theirs/jobs/{job.id}",
        "/schedules/their-cron",
        "/schedules/their-cron/edit",
        f"/alerts/{alert.id}/edit",
        f"/webhooks/{hook.id}",
    ]
    for path in reads:
        assert signed_in.get(path).status_code == 404, path
    writes = [
        "/queues/theirs/pause",
        "/queues/theirs/drain",
        "/queues/theirs/dlq/purge",
        f"/queues/theirs/jobs/{job.id}/cancel",
        "/schedules/their-cron/delete",
        "/schedules/their-cron/pause",
        f"/alerts/{alert.id}/delete",
        f"/alerts/{alert.id}/disable",
        f"/webhooks/{hook.id}/delete",
        f"/settings/keys/{other_key.key.id}/revoke",
    ]
    for path in writes:
        response = signed_in.post(path, follow=True)
        assert response.status_code in (200, 404) and "not found" in response.content.decode().lower(), path
    assert signed_in.post("/jobs/bulk", {"action": "delete", "id": [job.id]}, follow=True).status_code == 200
    queue.refresh_from_db()
    assert queue.paused is False and Job.objects.get(pk=job.pk).state == "waiting"
    assert Schedule.objects.get(name="their-cron").paused is False
    assert (
        Alert.objects.get(pk=alert.pk).enabled is True
        and WebhookSubscription.objects.filter(pk=hook.pk).exists()
    )
    assert ApiKey.objects.get(pk=other_key.key.pk).revoked_at is None
    search = signed_in.get("/search", {"q": job.id}).content.decode()
    assert f'data-job="{job.id}"' not in search and "No jobs match" in search


def test_the_change_feed_says_which_queue_job_and_kind_changed(workspace):
    from dashboard.live import ChangeFeed
    from jobs.services.enqueue import job_enqueue
    from jobs.specs import JobSpec

    queue = make_queue(workspace, "emails")
    feed = ChangeFeed(
        workspace_id=workspace.id,
        slot=None,
        still_authorized=lambda: True,
        closed={},
        poll_s=1,
        heartbeat_s=15,
        recheck_s=30,
    )
    feed.opening()
    assert feed.poll() == ("", False)
    job, _ = job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="x"))
    frame, _ = feed.poll()
    assert frame.startswith("event: changed")
    data = json.loads(frame.split("data: ", 1)[1])
    assert data["changes"] == [{"q": "emails", "j": job.id, "k": "job:waiting"}]


def test_a_cron_schedule_edited_into_an_interval_one(signed_in, workspace):
    from schedules.models import Schedule
    from schedules.services import schedule_create

    make_queue(workspace, "emails")
    schedule_create(
        workspace=workspace,
        data={"name": "tick", "queue": "emails", "cron": "0 3 * * *", "timezone": "Europe/Paris"},
    )
    form = {"name": "tick", "queue": "emails", "kind": "interval", "interval_s": "90", "payload": '{"a": 1}'}
    response = signed_in.post("/schedules/tick/edit", form)
    assert response.status_code == 302 and response["Location"] == "/schedules/tick"
    schedule = Schedule.objects.get(name="tick")
    assert (schedule.cron, schedule.interval_ms, schedule.timezone) == (None, 90000, None)
    assert schedule.job["payload"] == {"a": 1}
    page = signed_in.get("/schedules/tick").content.decode()
    assert "Every 90 s" in page

    bad = signed_in.post("/schedules/tick/edit", {**form, "payload": "{not json"})
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "Not valid JSON" in body and "{not json" in body  # the typed text comes back


def test_alert_edit_form_unticking_enabled_disables_it(signed_in, workspace):
    from alerts.models import Alert
    from alerts.services import alert_create

    alert, _ = alert_create(
        workspace=workspace, data={"name": "ops", "channel": "email", "target": "a@example.com"}
    )
    form = {
        "name": "ops",
        "channel": "email",
        "target": "a@example.com",
        "consecutive_failures_threshold": "2",
    }
    assert signed_in.post(f"/alerts/{alert.id}/edit", form).status_code == 302
    alert = Alert.objects.get()
    assert alert.enabled is False and alert.consecutive_failures_threshold == 2
    assert signed_in.post(f"/alerts/{alert.id}/edit", {**form, "enabled": "on"}).status_code == 302
    assert Alert.objects.get().enabled is True
