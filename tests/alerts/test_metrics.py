"""`GET /metrics`: internal Prometheus text."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.metrics import render_metrics
from alerts.models import Alert, WebhookDelivery, WebhookSubscription
from config import liveness
from jobs.models import Execution, Worker
from queues.models import QueueMinuteStat
from tests.factories import JobFactory, insert_jobs, make_queue

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


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition, keyed by (sample name, sorted label pairs)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: object) -> float:
    return samples[(name, tuple(sorted((k, str(v)) for k, v in labels.items())))]


def _this_minute(workspace, queue, **counts) -> QueueMinuteStat:
    """The queue's rollup row of the current minute."""
    minute = timezone.now().replace(second=0, microsecond=0)
    return QueueMinuteStat.objects.create(workspace=workspace, queue=queue, minute=minute, **counts)


def test_metrics_content(anon_client, metrics_settings, pro_workspace):
    queue = make_queue(pro_workspace, "emails")
    now = timezone.now()
    for state in ("waiting", "waiting", "delayed"):
        JobFactory(queue=queue, state=state, now=now)
    _this_minute(
        pro_workspace,
        queue,
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
    assert "# TYPE spindle_executions_total counter" in text.splitlines()
    samples = _samples(text)
    q = {"workspace": pro_workspace.id, "queue": "emails"}
    expected = {
        ("spindle_jobs", (("state", "waiting"),)): 2,
        ("spindle_jobs", (("state", "delayed"),)): 1,
        ("spindle_jobs_enqueued_total", ()): 7,
        ("spindle_executions_total", (("outcome", "completed"),)): 5,
        ("spindle_executions_total", (("outcome", "failed"),)): 2,
        ("spindle_executions_total", (("outcome", "timeout"),)): 1,
        # Renamed from spindle_execution_duration_ms_{sum,count}: seconds, as a histogram.
        ("spindle_execution_duration_seconds_sum", ()): 0.1,
        ("spindle_execution_duration_seconds_count", ()): 7,
    }
    for (name, extra), value in expected.items():
        assert _value(samples, name, **q, **dict(extra)) == value, name
    assert _value(samples, "spindle_up") == 1
    assert _value(samples, "spindle_queues", workspace=pro_workspace.id) == 1
    assert _value(samples, "spindle_webhook_deliveries_failed_total") == 1


# --- the families added for operators (issue 18): a small known dataset -------------------------------------


def _attempt(job, n, started_at, error_type=None, http_status=None) -> Execution:
    """Attempt `n` of `job`; with `error_type`, a failed one that recorded that error."""
    error = {"type": error_type, "http_status": http_status} if error_type else None
    fields = {"error": error, "http_status": http_status, "status": "failed" if error else "success"}
    return Execution.objects.create(
        workspace_id=job.workspace_id,
        job=job,
        queue_id=job.queue_id,
        attempt=n,
        started_at=started_at,
        **fields,
    )


def _known_dataset(workspace) -> None:
    """emails: 2 waiting jobs (oldest due 30 s ago), 1 delayed, 2 dead-lettered; in the rollup, first attempts
    started 0.2 s and 50 s after enqueue and five attempts of five error types this minute, one older minute;
    and its duration histogram. `empty`: a queue with nothing. Execution rows are no source: one with an error
    today counts nowhere."""
    queue = make_queue(workspace, "emails")
    make_queue(workspace, "empty")
    now = timezone.now()
    JobFactory(queue=queue, state="waiting", now=now - timedelta(seconds=30))
    JobFactory(queue=queue, state="waiting", now=now - timedelta(seconds=5))
    JobFactory(queue=queue, state="delayed", now=now, run_at=now + timedelta(hours=1))
    JobFactory.create_batch(2, queue=queue, state="failed", now=now)
    slow = JobFactory(queue=queue, state="completed", now=now - timedelta(seconds=100))
    _attempt(slow, 1, now - timedelta(seconds=20), "connection_error")
    errors = {"http_error|503": 1, "http_error|404": 1, "connection_error|": 1, "timeout|": 1}
    errors["mine|"] = 1  # a type a pull worker made up
    hist = {"5": 2, "100": 3, "inf": 1}
    starts = {"start_hist": {"250": 1, "60000": 1}, "start_sum_ms": 50200, "start_count": 2}
    _this_minute(
        workspace,
        queue,
        completed=5,
        duration_sum_ms=1500,
        duration_count=6,
        duration_hist=hist,
        errors=errors,
        **starts,
    )
    QueueMinuteStat.objects.create(
        workspace=workspace,
        queue=queue,
        minute=now.replace(second=0, microsecond=0) - timedelta(days=3),
        errors={"timeout|": 4},
        start_hist={"50": 3},
        start_count=3,
    )
    Worker.objects.create(workspace=workspace, name="w1")
    _delivery(workspace, status="pending")


FAMILIES = set(
    """spindle_up spindle_info spindle_jobs spindle_queue_depth spindle_queue_oldest_waiting_age_seconds
    spindle_dlq_jobs spindle_queues spindle_jobs_enqueued spindle_executions spindle_execution_duration_seconds
    spindle_enqueue_to_start_seconds spindle_delivery_errors spindle_workers spindle_webhook_deliveries
    spindle_webhook_deliveries_failed spindle_alert_notifications spindle_events_fanout_lag_seconds
    spindle_last_sweep_timestamp_seconds spindle_last_tick_timestamp_seconds""".split()
)


LE_START, LE_RUN = ("0.1", "0.25", "30.0", "60.0", "+Inf"), ("0.005", "0.05", "0.1", "300.0", "+Inf")


@pytest.fixture
def known_scrape(pro_workspace) -> str:
    """The exposition of the known dataset, with the sweeper marked now and the ticker never."""
    _known_dataset(pro_workspace)
    cache.clear()
    liveness.mark("sweeper")
    return render_metrics()


def test_operator_families_have_the_known_values(pro_workspace, known_scrape):
    samples = _samples(known_scrape)
    emails = {"workspace": pro_workspace.id, "queue": "emails"}
    empty = {"workspace": pro_workspace.id, "queue": "empty"}

    assert _value(samples, "spindle_queue_depth", **emails) == 2
    assert _value(samples, "spindle_queue_depth", **empty) == 0
    assert 29 <= _value(samples, "spindle_queue_oldest_waiting_age_seconds", **emails) < 60
    assert _value(samples, "spindle_queue_oldest_waiting_age_seconds", **empty) == 0
    assert _value(samples, "spindle_dlq_jobs", **emails) == 2
    assert _value(samples, "spindle_dlq_jobs", **empty) == 0

    start = {
        le: _value(samples, "spindle_enqueue_to_start_seconds_bucket", **emails, le=le) for le in LE_START
    }
    assert start == {"0.1": 0, "0.25": 1, "30.0": 1, "60.0": 2, "+Inf": 2}
    assert _value(samples, "spindle_enqueue_to_start_seconds_count", **emails) == 2
    assert _value(samples, "spindle_enqueue_to_start_seconds_sum", **emails) == pytest.approx(50.2)

    duration = {
        le: _value(samples, "spindle_execution_duration_seconds_bucket", **emails, le=le) for le in LE_RUN
    }
    assert duration == {"0.005": 2, "0.05": 2, "0.1": 5, "300.0": 5, "+Inf": 6}
    assert _value(samples, "spindle_execution_duration_seconds_sum", **emails) == 1.5

    errors = {
        dict(k)["type"]: v for (name, k), v in samples.items() if name == "spindle_delivery_errors_total"
    }
    assert errors == {"http_5xx": 1, "http_4xx": 1, "connection_error": 1, "timeout": 1, "other": 1}

    assert abs(_value(samples, "spindle_last_sweep_timestamp_seconds") - time.time()) < 60
    assert _value(samples, "spindle_last_tick_timestamp_seconds") == 0


def test_promtool_accepts_a_scrape_with_data_in_every_family(known_scrape):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make promtool` installs Debian's prometheus package"
    text = known_scrape
    families = list(text_string_to_metric_families(text))
    assert {family.name for family in families} == FAMILIES
    assert all(family.samples for family in families), [f.name for f in families if not f.samples]
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


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
# One aggregate query per read in alerts/metrics/reads.py (webhook deliveries and alert notifications: two each);
# none reads executions (issue 18: start latency and errors come from the rollup).
MAX_METRICS_QUERIES = 11


def _seed_live(workspace, queue):
    from alerts.models import AlertNotification

    now = timezone.now()
    JobFactory(queue=queue, state="waiting", now=now)
    JobFactory(queue=queue, state="delayed", now=now, run_at=now + timedelta(hours=1))
    active = JobFactory(queue=queue, state="active", now=now, lease_expires_at=now + timedelta(minutes=1))
    _attempt(active, 1, now, "timeout")
    _this_minute(workspace, queue, enqueued=3, completed=1)
    sub = _delivery(workspace, status="pending").subscription
    alert = Alert.objects.create(
        workspace=workspace, name="a", channel="webhook", target="http://127.0.0.1/x"
    )
    AlertNotification.objects.create(workspace=workspace, alert=alert, kind="fired", status="pending")
    return sub, alert


def _seed_history(workspace, queue, sub, alert, *, rows):
    """`rows` of everything /metrics must not read: finished jobs and their attempts, past minutes, sent
    deliveries and notes."""
    from alerts.models import AlertNotification

    now = timezone.now()
    past = now - timedelta(days=3)
    finished = insert_jobs(queue, rows, now=past, state="completed")
    old = {"attempt": 1, "status": "failed", "started_at": past, "error": {"type": "timeout"}}
    Execution.objects.bulk_create(Execution(workspace=workspace, job=j, queue=queue, **old) for j in finished)
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
    fresh = _samples(anon_client.get("/metrics", **auth).content.decode())
    assert _value(fresh, "spindle_jobs", workspace=pro_workspace.id, queue="emails", state="waiting") == 2
