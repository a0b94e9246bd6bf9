"""`GET /metrics`: internal Prometheus text."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.metrics import render_metrics
from alerts.models import Alert, WebhookDelivery, WebhookSubscription
from jobs.models import Job
from queues.models import QueueMinuteStat
from tests.factories import JobFactory, make_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_IPS = []
    return settings


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic s3cret-token", "Bearer "])
def test_refused_without_token_or_address(anon_client, metrics_settings, auth):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    response = anon_client.get("/metrics", **headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


def test_empty_token_never_matches(anon_client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    response = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"


def test_workspace_api_key_is_not_enough(api_client, metrics_settings):
    response = api_client.get("/metrics")
    assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("allowed", [["127.0.0.1"], ["10.0.0.0/8", "127.0.0.0/8"]])
def test_allowed_address(anon_client, settings, allowed):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = allowed
    response = anon_client.get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200
    # A forged forwarded header does not grant access from elsewhere.
    settings.METRICS_ALLOWED_IPS = ["10.1.2.3"]
    assert anon_client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403


def _delivery(workspace, *, status: str) -> WebhookDelivery:
    """One delivery (of a new subscription) with the given status, created now."""
    sub = WebhookSubscription.objects.create(
        workspace=workspace, url="http://127.0.0.1/x", events=["*"], secret="whsec_eA=="
    )
    return WebhookDelivery.objects.create(
        workspace=workspace,
        subscription=sub,
        event_id="evt_1",
        event_type="job:failed",
        body="{}",
        status=status,
    )


def test_metrics_content(anon_client, metrics_settings, pro_workspace):
    queue = make_queue(pro_workspace, "emails")
    now = timezone.now()
    for state in ("waiting", "waiting", "delayed"):
        JobFactory(queue=queue, state=state, now=now)
    QueueMinuteStat.objects.create(
        workspace=pro_workspace,
        queue=queue,
        minute=now.replace(second=0, microsecond=0),
        enqueued=7,
        completed=5,
        failed=2,
        timeout=1,
        duration_sum_ms=100,
        duration_count=7,
    )
    _delivery(pro_workspace, status="failed")

    response = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    ws = pro_workspace.id
    expected = [
        "spindle_up 1",
        f'spindle_jobs{{workspace="{ws}",queue="emails",state="waiting"}} 2',
        f'spindle_jobs{{workspace="{ws}",queue="emails",state="delayed"}} 1',
        f'spindle_queues{{workspace="{ws}"}} 1',
        f'spindle_jobs_enqueued_total{{workspace="{ws}",queue="emails"}} 7',
        f'spindle_executions_total{{workspace="{ws}",queue="emails",outcome="completed"}} 5',
        f'spindle_executions_total{{workspace="{ws}",queue="emails",outcome="failed"}} 2',
        f'spindle_executions_total{{workspace="{ws}",queue="emails",outcome="timeout"}} 1',
        "spindle_webhook_deliveries_failed_total 1",
        "# TYPE spindle_executions_total counter",
    ]
    for line in expected:
        assert line in text.splitlines(), line


# --- bounded: no query reads history (issue 9, item 10) ------------------------------------------------

# Tables that grow with traffic and retention; /metrics may read only their live or recent rows.
HISTORY_TABLES = {
    "jobs_job",
    "jobs_execution",
    "jobs_event",
    "jobs_queueminutestat",
    "alerts_webhookdelivery",
    "alerts_alertnotification",
}
MAX_METRICS_QUERIES = 12


def _seed_live(workspace, queue):
    from alerts.models import AlertNotification

    now = timezone.now()
    JobFactory(queue=queue, state="waiting", now=now)
    JobFactory(queue=queue, state="delayed", now=now, run_at=now + timedelta(hours=1))
    JobFactory(queue=queue, state="active", now=now, lease_expires_at=now + timedelta(minutes=1))
    QueueMinuteStat.objects.create(
        workspace=workspace, queue=queue, minute=now.replace(second=0, microsecond=0), enqueued=3, completed=1
    )
    sub = _delivery(workspace, status="pending").subscription
    alert = Alert.objects.create(
        workspace=workspace, name="a", channel="webhook", target="http://127.0.0.1/x"
    )
    AlertNotification.objects.create(workspace=workspace, alert=alert, kind="fired", status="pending")
    return sub, alert


def _seed_history(workspace, queue, sub, alert, *, rows):
    """`rows` of everything /metrics must not read: finished jobs, past minutes, sent deliveries and notes."""
    from alerts.models import AlertNotification

    now = timezone.now()
    past = now - timedelta(days=3)
    Job.objects.bulk_create(
        Job(
            workspace=workspace,
            queue=queue,
            state="completed",
            run_at=past,
            created_at=past,
            updated_at=past,
            finished_at=past,
        )
        for _ in range(rows)
    )
    start = QueueMinuteStat.objects.order_by("minute").values_list("minute", flat=True).first() or now
    QueueMinuteStat.objects.bulk_create(
        QueueMinuteStat(
            workspace=workspace, queue=queue, minute=start - timedelta(days=2, minutes=i), completed=1
        )
        for i in range(rows)
    )
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            workspace=workspace,
            subscription=sub,
            event_id=f"evt_{uuid.uuid4().hex}",
            event_type="job:failed",
            body="{}",
            status=status,
        )
        for status in ("success", "failed")
        for _ in range(rows // 2)
    )
    AlertNotification.objects.bulk_create(
        AlertNotification(workspace=workspace, alert=alert, kind="fired", status="success")
        for _ in range(rows)
    )
    WebhookDelivery.objects.exclude(status="pending").update(created_at=past)
    AlertNotification.objects.exclude(status="pending").update(created_at=past)


def _history_rows_read(sql: str) -> int:
    """Rows PostgreSQL reads from history tables for `sql` (EXPLAIN ANALYZE), with sequential scans
    discouraged so a tiny test table is read through an index whenever one can serve the query."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
        cursor.execute("SET LOCAL enable_seqscan = on")
    if isinstance(plan, str):
        plan = json.loads(plan)
    total = 0
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", []))
        if node.get("Relation Name") in HISTORY_TABLES:
            loops = node.get("Actual Loops", 1)
            read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
            total += read * loops + node.get("Rows Removed by Index Recheck", 0)
    return total


def _render_queries() -> list[str]:
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        render_metrics()
    return [q["sql"] for q in ctx.captured_queries]


def test_metrics_reads_no_history(pro_workspace):
    queue = make_queue(pro_workspace, "emails")
    sub, alert = _seed_live(pro_workspace, queue)
    _seed_history(pro_workspace, queue, sub, alert, rows=200)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    reads = {
        sql: _history_rows_read(sql) for sql in _render_queries() if sql.lstrip("(").startswith("SELECT")
    }
    # The live rows (3 jobs, 1 minute, 1 pending delivery, 1 pending note) and nothing of the 200-row history.
    heavy = {sql: n for sql, n in reads.items() if n > 20}
    assert not heavy, heavy


def test_metrics_query_count_is_pinned_and_independent_of_history(
    pro_workspace, django_assert_max_num_queries
):
    queue = make_queue(pro_workspace, "emails")
    sub, alert = _seed_live(pro_workspace, queue)
    small = len(_render_queries())
    _seed_history(pro_workspace, queue, sub, alert, rows=300)
    cache.clear()
    with django_assert_max_num_queries(MAX_METRICS_QUERIES):
        render_metrics()
    assert len(_render_queries()) == small


def test_metrics_snapshot_is_reused_between_scrapes(
    anon_client, metrics_settings, pro_workspace, django_assert_num_queries
):
    metrics_settings.METRICS_SNAPSHOT_S = 60
    queue = make_queue(pro_workspace, "emails")
    _seed_live(pro_workspace, queue)
    auth = {"HTTP_AUTHORIZATION": "Bearer s3cret-token"}
    first = anon_client.get("/metrics", **auth)
    assert first.status_code == 200
    # A second scrape (another Prometheus, another process) inside the window reads no table.
    with django_assert_num_queries(0):
        again = anon_client.get("/metrics", **auth)
    assert again.content == first.content
    # Past the window the snapshot is rendered again and sees new rows.
    metrics_settings.METRICS_SNAPSHOT_S = 0
    JobFactory(queue=queue, state="waiting")
    fresh = anon_client.get("/metrics", **auth).content.decode()
    assert (
        f'spindle_jobs{{workspace="{pro_workspace.id}",queue="emails",state="waiting"}} 2'
        in fresh.splitlines()
    )
