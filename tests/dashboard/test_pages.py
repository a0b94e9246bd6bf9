"""The dashboard in a real browser (Chromium via Playwright) against the real app: every page and action.

Each test checks what the page shows and what the database holds afterwards: every button goes through the
owning service, so the rows change exactly as the API would change them.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from accounts.services import api_key_revoke
from alerts.models import Alert, WebhookSubscription
from jobs.models import Job
from jobs.services.enqueue import job_enqueue, job_enqueue_batch
from jobs.services.pull import job_claim_pull, job_finish_pull
from jobs.specs import JobSpec
from queues.models import Queue
from schedules.models import Schedule
from schedules.services import schedule_create
from tests.factories import make_queue

from .helpers import login_with_key, login_with_password

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _failed_job(workspace, queue: Queue, **spec) -> Job:
    """A job that really ran and failed for good: enqueued, claimed and failed through the pull services."""
    job, _ = job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(**spec))
    _, [leased] = job_claim_pull(workspace=workspace, queue_name=queue.name, limit=1)
    assert leased.id == job.id
    job_finish_pull(
        workspace=workspace,
        queue_name=queue.name,
        job_id=job.id,
        lease_token=leased.lease_token,
        success=False,
        error={"message": "smtp refused"},
        retry=False,
    )
    job.refresh_from_db()
    assert job.state == "failed"
    return job


def test_unauthenticated_pages_redirect_to_login_and_back(page, account):
    page.goto("/jobs?state=failed")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fjobs%3Fstate%3Dfailed$"))
    for path in ("/", "/schedules", "/alerts", "/webhooks", "/usage", "/queues/emails/dlq"):
        page.goto(path)
        assert "/login?next=" in page.url, path
    page.goto("/jobs?state=failed")
    form = page.locator("#login-password")
    form.locator("input[name=email]").fill("ada@example.com")
    form.locator("input[name=password]").fill("wrong password")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-error")).to_contain_text("Wrong email or password")
    form = page.locator("#login-password")
    form.locator("input[name=email]").fill("ada@example.com")
    form.locator("input[name=password]").fill("correct horse battery staple")
    form.locator("button[type=submit]").click()
    # Back where the visitor was going, with the filter kept.
    expect(page).to_have_url(re.compile(r"/jobs\?state=failed$"))
    expect(page.locator("#job-filters select[name=state]")).to_have_value("failed")


def test_password_login_and_logout(page, account):
    login_with_password(page)
    expect(page.locator("#who")).to_have_text("ada@example.com")
    expect(page.locator("h1")).to_have_text("Queues")
    page.locator("#logout").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".flash")).to_contain_text("Signed out")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))


def test_api_key_login_and_revocation_ends_the_session(page, account):
    workspace, issued = account.workspace, account.key
    page.goto("/login")
    page.locator("#login-key input[name=api_key]").fill("rt_ws_not-a-real-key")
    page.locator("#login-key button[type=submit]").click()
    expect(page.locator(".flash-error")).to_contain_text("Unknown or revoked API key")
    login_with_key(page, issued.raw)
    expect(page.locator("#who")).to_have_text(f"API key {issued.key.prefix}…")
    api_key_revoke(workspace=workspace, key_id=issued.key.id)
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fjobs$"))


def test_queues_actions_change_the_database(page, account):
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    _failed_job(workspace, queue, name="welcome")
    job_enqueue_batch(workspace=workspace, queue=queue, specs=[JobSpec(name="w") for _ in range(3)])
    login_with_password(page)
    row = page.locator("tr[data-queue=emails]")
    expect(row.locator("td[data-state=waiting]")).to_have_text("3")
    expect(row.locator("td[data-state=failed]")).to_have_text("1")
    # The sparkline: one failed execution this minute, from the per-minute rollup.
    expect(row.locator("svg.spark")).to_have_attribute("aria-label", "0 completed, 1 failed in the last hour")

    row.locator("button[data-action=pause]").click()
    expect(page.locator(".flash-success")).to_contain_text("Queue emails paused")
    expect(row.locator("[data-role=paused]")).to_be_visible()
    assert Queue.objects.get(pk=queue.pk).paused is True

    row.locator("button[data-action=resume]").click()
    expect(page.locator(".flash-success")).to_contain_text("Queue emails resumed")
    assert Queue.objects.get(pk=queue.pk).paused is False

    row.locator("button[data-action=drain]").click()  # confirm() accepted by the fixture
    expect(page.locator(".flash-success")).to_contain_text("3 jobs removed")
    assert not Job.objects.filter(queue=queue, state="waiting").exists()

    row.locator("button[data-action=retry-failed]").click()
    expect(page.locator(".flash-success")).to_contain_text("1 failed job sent back to waiting")
    assert list(Job.objects.filter(queue=queue).values_list("state", flat=True)) == ["waiting"]


def test_queue_counts_update_live_from_the_event_stream(page, account):
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    login_with_password(page)
    cell = page.locator("tr[data-queue=emails] td[data-state=waiting]")
    expect(cell).to_have_text("0")
    # The browser's one shared feed (a SharedWorker's EventSource) is open.
    expect(page.locator("html")).to_have_attribute("data-live-status", "open")
    job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="live"))
    # No reload and well before the 30 s fallback poll: the `changed` event made htmx re-fetch the table.
    expect(cell).to_have_text("1", timeout=5000)


def test_jobs_list_filters_pills_pagination_detail_and_replay(page, account):
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    failed = _failed_job(workspace, queue, name="invoice", tags=["billing", "eu"], payload={"n": 1})
    job_enqueue_batch(
        workspace=workspace, queue=queue, specs=[JobSpec(name=f"bulk{i}", tags=["bulk"]) for i in range(27)]
    )
    login_with_password(page)
    page.goto("/jobs")
    expect(page.locator("#jobs tbody tr")).to_have_count(25)
    page.locator("#next-page").click()  # keyset pagination: the 3 oldest
    expect(page.locator("#jobs tbody tr")).to_have_count(3)
    expect(page.locator(f"tr[data-job={failed.id}]")).to_be_visible()

    page.goto("/jobs")
    page.locator("#job-filters select[name=state]").select_option("failed")
    page.locator("#job-filters button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"state=failed"))
    expect(page.locator("#jobs tbody tr")).to_have_count(1)

    page.goto("/jobs?tag=bulk")
    expect(page.locator("#jobs tbody tr")).to_have_count(25)
    page.goto("/jobs?state=nonsense")
    expect(page.locator("#jobs-live .flash-error")).to_contain_text("`state` is not a job state")

    # A tag pill filters by its tag.
    page.goto("/jobs?state=failed")
    page.locator(f"tr[data-job={failed.id}] a.tag", has_text="eu").click()
    expect(page).to_have_url(re.compile(r"/jobs\?tag=eu$"))
    expect(page.locator("#jobs tbody tr")).to_have_count(1)

    page.locator(f"tr[data-job={failed.id}] a").first.click()
    expect(page.locator("#job-state")).to_have_text("failed")
    expect(page.locator("pre.json").first).to_contain_text('"n": 1')
    executions = page.locator("#executions tbody tr")
    expect(executions).to_have_count(1)
    expect(executions.first).to_contain_text("smtp refused")

    executions.first.locator("button[data-action=replay]").click()
    expect(page.locator(".flash-success")).to_contain_text("Replayed as job")
    replay = Job.objects.exclude(pk=failed.pk).get(replay_of__isnull=False)
    assert replay.tags == ["billing", "eu"] and replay.payload == {"n": 1} and replay.state == "waiting"
    expect(page).to_have_url(re.compile(rf"/queues/emails/jobs/{replay.id}$"))

    page.locator("button[data-action=cancel]").click()
    expect(page.locator("#job-state")).to_have_text("cancelled")
    assert Job.objects.get(pk=replay.pk).state == "cancelled"


def test_dlq_retry_one_and_purge(page, account):
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    first = _failed_job(workspace, queue, name="a")
    second = _failed_job(workspace, queue, name="b")
    login_with_password(page)
    page.locator("tr[data-queue=emails] [data-action=dlq]").click()
    expect(page.locator("h1")).to_contain_text("Dead-letter queue: emails")
    expect(page.locator("#dlq tbody tr")).to_have_count(2)

    page.locator(f"tr[data-job={first.id}] button[data-action=retry]").click()
    expect(page.locator(".flash-success")).to_contain_text("1 job sent back to waiting")
    expect(page.locator("#dlq tbody tr")).to_have_count(1)
    assert Job.objects.get(pk=first.pk).state == "waiting"

    page.locator("button[data-action=purge]").click()
    expect(page.locator(".flash-success")).to_contain_text("1 failed job deleted")
    expect(page.locator(".empty")).to_contain_text("The dead-letter queue is empty")
    assert not Job.objects.filter(pk=second.pk).exists()


def test_schedules_preview_and_pause(page, account):
    workspace = account.workspace
    make_queue(workspace, "emails")
    schedule_create(workspace=workspace, data={"name": "nightly", "queue": "emails", "cron": "0 3 * * *"})
    login_with_password(page)
    page.goto("/schedules")
    row = page.locator("tr[data-schedule=nightly]")
    runs = row.locator("ol.runs li time")
    expect(runs).to_have_count(5)
    times = [runs.nth(i).get_attribute("datetime") for i in range(5)]
    assert all(t.endswith("T03:00:00+00:00") for t in times), times
    assert times == sorted(set(times))

    row.locator("button[data-action=pause]").click()
    expect(page.locator(".flash-success")).to_contain_text("Schedule nightly paused")
    assert Schedule.objects.get(name="nightly").paused is True
    expect(row.locator("ol.runs li")).to_have_text("—")


def test_alerts_create_error_and_delete(page, account):
    workspace = account.workspace
    make_queue(workspace, "emails")
    login_with_password(page)
    page.goto("/alerts")
    form = page.locator("#alert-form")
    form.locator("input[name=name]").fill("ops")
    form.locator("select[name=channel]").select_option("email")
    form.locator("input[name=target]").fill("not an email")
    form.locator("button[type=submit]").click()
    # The service's ValidationFailed is a flash message, not a 500.
    expect(page.locator(".flash-error")).to_contain_text("target")
    assert not Alert.objects.exists()

    form.locator("input[name=name]").fill("ops")
    form.locator("input[name=target]").fill("ops@example.com")
    form.locator("select[name=queue]").select_option("emails")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("Alert ops created")
    alert = Alert.objects.get()
    assert (alert.workspace_id, alert.queue_name, alert.target) == (workspace.id, "emails", "ops@example.com")
    row = page.locator(f"tr[data-alert={alert.id}]")
    expect(row).to_contain_text("queue emails")

    row.locator("button[data-action=delete]").click()
    expect(page.locator(".flash-success")).to_contain_text("Alert ops deleted")
    assert not Alert.objects.exists()


def test_webhooks_create_and_delete(page, account, settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True  # the target is on loopback: nothing is sent in this test
    login_with_password(page)
    page.goto("/webhooks")
    form = page.locator("#webhook-form")
    form.locator("input[name=url]").fill("http://127.0.0.1:9/hook")
    form.locator("input[name=events]").fill("job:failed, job:nonsense")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-error")).to_contain_text("Unknown event type 'job:nonsense'")
    assert not WebhookSubscription.objects.exists()

    # The failed form comes back with what was typed.
    expect(form.locator("input[name=url]")).to_have_value("http://127.0.0.1:9/hook")
    expect(form.locator("input[name=events]")).to_have_value("job:failed, job:nonsense")
    form.locator("input[name=events]").fill("job:failed, job:completed")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("signing secret (shown once): whsec_")
    hook = WebhookSubscription.objects.get()
    assert hook.events == ["job:failed", "job:completed"]
    row = page.locator(f"tr[data-webhook={hook.id}]")
    expect(row).to_contain_text("job:completed")

    row.locator("button[data-action=delete]").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Webhook {hook.id} deleted")
    assert not WebhookSubscription.objects.exists()


def test_usage_against_plan_and_billing_off(page, account, settings):
    settings.STRIPE_SECRET_KEY = ""
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    job_enqueue_batch(workspace=workspace, queue=queue, specs=[JobSpec() for _ in range(4)])
    login_with_password(page)
    page.goto("/usage")
    expect(page.locator("#quota-used")).to_have_text("4")
    expect(page.locator("#quota-limit")).to_have_text("10,000")
    expect(page.locator("#rpm")).to_have_text("60")
    # With billing off there is no "Manage billing" button, and a hand-made POST is refused by the service.
    expect(page.locator("#plan")).to_contain_text("not configured on this installation")
    expect(page.locator("#manage-billing")).to_have_count(0)
    page.evaluate(
        """() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/billing/portal';
        const t = document.createElement('input'); t.name = 'csrfmiddlewaretoken';
        t.value = document.querySelector('[name=csrfmiddlewaretoken]').value; f.append(t);
        document.body.append(f); f.submit(); }"""
    )
    expect(page).to_have_url(re.compile(r"/usage$"))
    expect(page.locator(".flash-error")).to_contain_text("Billing is not configured")


def test_static_assets_are_served_without_debug(page, dashboard_url):
    response = page.request.get(f"{dashboard_url}/assets/htmx.min.js")
    assert response.status == 200 and "javascript" in response.headers["content-type"]
    assert "Zero-Clause BSD" in response.text()[:300]
    assert page.request.get(f"{dashboard_url}/assets/..%2Fviews.py").status == 404


def test_event_feed_needs_a_session_and_a_free_stream_slot(page, account, settings, dashboard_url):
    from jobs.services.streams import StreamSlot

    assert page.request.get(f"{dashboard_url}/events").status == 401
    login_with_password(page)
    settings.SPINDLE_MAX_STREAMS_PER_WORKSPACE = 1
    page.goto("about:blank")  # the dashboard page's own feed closes and frees its slot
    held = StreamSlot(account.workspace.id, ttl_s=30)
    deadline = time.monotonic() + 5
    while not held.acquire():
        assert time.monotonic() < deadline, "the closed page's feed kept its stream slot"
        time.sleep(0.05)
    try:
        # The dashboard's feed counts against the same per-workspace cap as API streams; 204 stops EventSource.
        assert page.request.get(f"{dashboard_url}/events").status == 204
    finally:
        held.release()
