"""The pages and actions issue 17 added, in a real browser at desktop (1280 px) and phone (390 px) widths.

Each test checks the rendered page and what the database holds afterwards: every button goes through a service.
"""

from __future__ import annotations

import json
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import ApiKey
from alerts.models import Alert, AlertNotification, WebhookDelivery
from alerts.services import webhook_create
from jobs.models import Execution, Job
from jobs.services.enqueue import job_enqueue, job_enqueue_batch
from jobs.services.pull import job_claim_pull, job_finish_pull, job_progress_set
from jobs.services.pull.workers import worker_register
from jobs.specs import JobSpec
from schedules.models import Schedule
from tests.factories import make_queue

from .helpers import login_with_password

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WIDTHS = [1280, 390]


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def sized(request, page):
    page.set_viewport_size({"width": request.param, "height": 900})
    return page


def _no_horizontal_scroll(page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    culprits = page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >
        document.documentElement.clientWidth + 1).slice(0, 8)
        .map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))"""
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow} px: {culprits}"


def test_job_page_shows_worker_lease_progress_result_flow_and_response_bodies(sized, account):
    page, workspace = sized, account.workspace
    pull = make_queue(workspace, "reports")
    worker = worker_register(workspace=workspace, name="etl-1", queues=["reports"], hostname="box-7")
    parent, _ = job_enqueue(workspace=workspace, queue=pull, spec=JobSpec(name="parent"))
    child, _ = job_enqueue(
        workspace=workspace, queue=pull, spec=JobSpec(name="child<b>", parent_id=parent.id)
    )
    _, [held] = job_claim_pull(workspace=workspace, queue_name="reports", limit=1, worker_id=worker.id)
    job_progress_set(
        workspace=workspace,
        queue_name="reports",
        job_id=held.id,
        lease_token=held.lease_token,
        progress={"pct": 40},
    )
    login_with_password(page)
    page.goto(f"/queues/reports/jobs/{held.id}")
    expect(page.locator("#job-state")).to_have_text("active")
    expect(page.locator("#job-worker")).to_contain_text("etl-1")
    expect(page.locator("#job-lease time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    expect(page.locator("#job-progress")).to_contain_text('"pct": 40')
    # A running attempt cannot be replayed: no button (and the service refuses it, see test_views).
    expect(page.locator("#executions tbody tr")).to_have_count(1)
    expect(page.locator("button[data-action=replay]")).to_have_count(0)
    _no_horizontal_scroll(page)

    job_finish_pull(
        workspace=workspace,
        queue_name="reports",
        job_id=held.id,
        lease_token=held.lease_token,
        success=True,
        result={"rows": 1200},
    )
    page.reload()
    expect(page.locator("#job-result")).to_contain_text('"rows": 1200')
    related = parent if held.id == parent.id else child
    if held.id == parent.id:
        expect(page.locator(f"#children tr[data-job={child.id}]")).to_contain_text("child<b>")
    else:
        expect(page.locator("#job-parent")).to_contain_text(related.id)

    # A push attempt's stored response body (a traceback) is one click away, escaped.
    push = make_queue(workspace, "hooks", delivery="push")
    job, _ = job_enqueue(workspace=workspace, queue=push, spec=JobSpec(name="hook"))
    Execution.objects.create(
        workspace=workspace,
        job=job,
        queue=push,
        attempt=1,
        status="failed",
        http_status=500,
        started_at=timezone.now(),
        response_body='Traceback (most recent call last):\n  <script>alert(1)</script>\nKeyError: "user"',
        error={"message": "The target answered HTTP 500."},
    )
    page.goto(f"/queues/hooks/jobs/{job.id}")
    row = page.locator("#executions tbody tr").first
    row.locator("details[data-role=response] summary").click()
    expect(row.locator("pre.body")).to_contain_text('KeyError: "user"')
    expect(row.locator("pre.body")).to_contain_text("<script>alert(1)</script>")  # shown as text, not run
    expect(row.locator("button[data-action=replay]")).to_be_visible()
    _no_horizontal_scroll(page)


def test_queue_page_settings_charts_tabs_promote_and_clean(sized, account):
    page, workspace = sized, account.workspace
    queue = make_queue(workspace, "emails", delivery="push")
    later = timezone.now() + timezone.timedelta(hours=1)
    job_enqueue_batch(workspace=workspace, queue=queue, specs=[JobSpec(run_at=later) for _ in range(2)])
    job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="now"))
    login_with_password(page)
    page.locator("tr[data-queue=emails] a", has_text="emails").click()
    expect(page.locator("h1")).to_contain_text("Queue emails")
    expect(page.locator("#queue-settings")).to_contain_text("Concurrency")
    expect(page.locator("figure.chart")).to_have_count(3)
    expect(page.locator("figure.chart[data-chart=Completed] svg")).to_have_attribute("role", "img")
    expect(page.locator("#state-tabs a[data-state=delayed]")).to_contain_text("2")
    _no_horizontal_scroll(page)

    page.locator("#state-tabs a[data-state=delayed]").click()
    expect(page.locator("#queue-live tbody tr")).to_have_count(2)
    expect(page.locator("button[data-action=retry-failed]")).to_have_count(
        0
    )  # no failed job: nothing to retry

    page.locator("button[data-action=promote]").click()  # confirm() accepted by the fixture
    expect(page.locator(".flash-success")).to_contain_text("2 delayed jobs made ready now")
    assert Job.objects.filter(queue=queue, state="waiting").count() == 3

    page.locator("#clean-form select[name=state]").select_option("waiting")
    page.locator("#clean-form input[name=grace_s]").fill("0")
    page.locator("button[data-action=clean]").click()
    expect(page.locator(".flash-success")).to_contain_text("3 waiting jobs removed")
    assert not Job.objects.filter(queue=queue).exists()


def test_search_by_id_and_payload_then_bulk_actions(sized, account):
    page, workspace = sized, account.workspace
    queue = make_queue(workspace, "emails")
    specs = [JobSpec(name=f"n{i}", payload={"customer": f"cust-{i}"}) for i in range(3)]
    jobs = [job for job, _ in job_enqueue_batch(workspace=workspace, queue=queue, specs=specs)]
    login_with_password(page)
    page.goto("/search")
    form = page.locator("#search-form")
    form.locator("input[name=q]").fill(jobs[1].id)
    form.locator("button[type=submit]").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator(f"tr[data-job={jobs[1].id}]")).to_be_visible()

    form.locator("select[name=type]").select_option("payload")
    form.locator("input[name=q]").fill("cust-2")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-error")).to_contain_text("`queue` is required for a payload search")
    form.locator("select[name=queue]").select_option("emails")
    form.locator("button[type=submit]").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator(f"tr[data-job={jobs[2].id}]")).to_be_visible()
    _no_horizontal_scroll(page)

    page.goto("/jobs")
    for job in jobs[:2]:
        page.locator(f"#pick-{job.id}").check()
    page.locator("button[data-action=bulk-cancel]").click()
    expect(page.locator(".flash-success")).to_contain_text("2 jobs cancelled")
    states = dict(Job.objects.filter(queue=queue).values_list("id", "state"))
    assert states == {jobs[0].id: "cancelled", jobs[1].id: "cancelled", jobs[2].id: "waiting"}

    page.locator("input[data-select-all]").check()
    page.locator("button[data-action=bulk-retry]").click()
    expect(page.locator(".flash-success")).to_contain_text("2 jobs retried")
    expect(page.locator(".flash-error")).to_contain_text(
        f"Job {jobs[2].id} skipped: A waiting job cannot be retried."
    )

    page.locator("input[data-select-all]").check()
    page.locator("button[data-action=bulk-delete]").click()
    expect(page.locator(".flash-success")).to_contain_text("3 jobs deleted")


def test_schedule_create_with_kept_input_history_edit_and_delete(sized, account):
    page, workspace = sized, account.workspace
    make_queue(workspace, "emails")
    login_with_password(page)
    page.goto("/schedules")
    page.locator("#new-schedule").click()
    form = page.locator("#schedule-form")
    form.locator("input[name=name]").fill("nightly")
    form.locator("input[name=cron]").fill("0 3 * *")
    form.locator("textarea[name=payload]").fill('{"report": "<daily>"}')
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-error")).to_contain_text("cron")
    # The failed form keeps what was typed.
    expect(form.locator("input[name=name]")).to_have_value("nightly")
    expect(form.locator("textarea[name=payload]")).to_have_value('{"report": "<daily>"}')
    assert not Schedule.objects.exists()

    form.locator("input[name=cron]").fill("0 3 * * *")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("Schedule nightly created")
    expect(page.locator("#described")).to_contain_text("At 03:00")
    expect(page.locator("pre.json")).to_contain_text('"report": "<daily>"')

    page.locator("button[data-action=trigger]").click()
    expect(page.locator(".flash-success")).to_contain_text("Schedule nightly triggered")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs tbody tr").first).to_contain_text("waiting")
    _no_horizontal_scroll(page)

    page.locator("a[data-action=edit]").click()
    form = page.locator("#schedule-form")
    form.locator("input[name=cron]").fill("*/15 * * * 1-5")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("Schedule nightly saved")
    expect(page.locator("#described")).to_contain_text("Every 15 minutes, Monday through Friday")
    assert Schedule.objects.get().cron == "*/15 * * * 1-5"

    page.locator("button[data-action=delete]").click()
    expect(page.locator(".flash-success")).to_contain_text("Schedule nightly deleted")
    assert not Schedule.objects.exists()


def test_workers_webhook_log_alert_controls_and_api_keys(sized, account, settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    page, workspace = sized, account.workspace
    make_queue(workspace, "reports")
    worker = worker_register(
        workspace=workspace, name="etl-1", queues=["reports"], hostname="box-7", concurrency=4
    )
    hook, _secret = webhook_create(
        workspace=workspace, data={"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    )
    WebhookDelivery.objects.create(
        workspace=workspace,
        subscription=hook,
        event_id="evt_1",
        event_type="job:failed",
        body=json.dumps({"type": "job:failed"}),
        status="failed",
        attempts=3,
        response_status=502,
        response_body="<h1>Bad gateway</h1>",
    )
    login_with_password(page)

    page.goto("/workers")
    row = page.locator(f"tr[data-worker={worker.id}]")
    expect(row).to_contain_text("etl-1")
    expect(row).to_contain_text("box-7")
    expect(row.locator("[data-role=online]")).to_have_text("online")
    _no_horizontal_scroll(page)

    page.goto("/webhooks")
    page.locator(f"tr[data-webhook={hook.id}] a[data-action=deliveries]").click()
    delivery = page.locator("#deliveries tbody tr").first
    expect(delivery).to_contain_text("job:failed")
    expect(delivery).to_contain_text("HTTP 502")
    _no_horizontal_scroll(page)

    page.goto("/alerts")
    form = page.locator("#alert-form")
    form.locator("input[name=name]").fill("ops")
    form.locator("input[name=target]").fill("ops@example.com")
    form.locator("button[type=submit]").click()
    alert = Alert.objects.get()
    row = page.locator(f"tr[data-alert={alert.id}]")
    row.locator("button[data-action=test]").click()
    expect(page.locator(".flash-success")).to_contain_text("Test message to alert ops queued")
    assert AlertNotification.objects.filter(alert=alert, kind="test").count() == 1
    row.locator("button[data-action=disable]").click()
    expect(row.locator("[data-role=status]")).to_have_text("disabled")
    assert Alert.objects.get().enabled is False
    row.locator("button[data-action=enable]").click()
    expect(row.locator("[data-role=status]")).to_have_text("ok")
    row.locator("a[data-action=edit]").click()
    form = page.locator("#alert-form")
    expect(form.locator("input[name=target]")).to_have_value("ops@example.com")
    form.locator("input[name=name]").fill("ops-oncall")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("Alert ops-oncall saved")
    assert Alert.objects.get().name == "ops-oncall"
    _no_horizontal_scroll(page)

    page.goto("/settings")
    page.locator("#key-form input[name=name]").fill("ci")
    page.locator("#key-form button[type=submit]").click()
    raw = page.locator("#new-key-value").inner_text()
    assert raw.startswith("rt_ws_")
    key = ApiKey.objects.get(name="ci")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)  # shown once
    page.goto("/settings")
    page.locator(f"tr[data-key={key.id}] button[data-action=revoke]").click()
    expect(page.locator(".flash-success")).to_contain_text("API key ci")
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    _no_horizontal_scroll(page)


def test_dashboard_404_page_and_api_404_json(page, account, dashboard_url):
    login_with_password(page)
    for path in ("/no-such-page", "/queues/missing", "/queues/missing/jobs/job_00000000000000000000000000"):
        response = page.goto(path)
        assert response.status == 404, path
        expect(page.locator("#error h1")).to_have_text("Not found")
        expect(page.locator("nav")).to_be_visible()
    api = page.request.get(f"{dashboard_url}/v1/no-such-route")
    assert api.status == 404 and api.json()["error"]["code"] == "NOT_FOUND"


def test_every_page_fits_390px_with_a_usable_nav(page, account):
    workspace = account.workspace
    queue = make_queue(workspace, "a-rather-long-queue-name-for-phones")
    job, _ = job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="x", tags=["one", "two"]))
    page.set_viewport_size({"width": 390, "height": 844})
    login_with_password(page)
    paths = [
        "/",
        "/jobs",
        "/search",
        "/schedules",
        "/schedules/new",
        "/workers",
        "/alerts",
        "/webhooks",
        "/usage",
        "/settings",
        f"/queues/{queue.name}",
        f"/queues/{queue.name}/dlq",
        f"/queues/{queue.name}/jobs/{job.id}",
    ]
    for path in paths:
        page.goto(path)
        _no_horizontal_scroll(page)
        for link in page.locator("nav a").all():
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (
                path,
                link.inner_text(),
            )
    # The skip link is first in tab order and lands on the content.
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
