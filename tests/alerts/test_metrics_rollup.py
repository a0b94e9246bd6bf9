"""`/metrics` enqueue-to-start and error series come from the minute rollup (issue 18): written by every path
that ends an attempt (engine outcomes, sweeper timeouts, pull complete/fail/ack, push delivery), and read by a
scrape whose statements do not grow with traffic and never touch executions."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.metrics import render_metrics
from alerts.metrics.collector import error_label
from config import db
from jobs.models import Execution, Job
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes, jobs_sweep
from jobs.services.stats import StatDelta, stats_record
from jobs.tasks import deliver_queue
from queues.models import Queue, QueueMinuteStat
from tests.alerts.test_metrics import MAX_METRICS_QUERIES, _render_queries
from tests.factories import insert_jobs, make_queue

pytestmark = pytest.mark.django_db

LE = ("0.05", "1.0", "30.0", "60.0", "300.0", "+Inf")


def _scrape() -> dict:
    cache.clear()
    samples: dict = {}
    for family in text_string_to_metric_families(render_metrics()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _series(samples: dict, queue: Queue) -> tuple[dict, dict, float | None]:
    """(start buckets by le, errors by type, start sum) of one queue."""
    mine = {("workspace", queue.workspace_id), ("queue", queue.name)}
    start, errors, total = {}, {}, None
    for (name, labels), value in samples.items():
        rest = dict(set(labels) - mine)
        if not mine <= set(labels):
            continue
        if name == "spindle_enqueue_to_start_seconds_bucket" and rest["le"] in LE:
            start[rest["le"]] = value
        elif name == "spindle_enqueue_to_start_seconds_sum":
            total = value
        elif name == "spindle_delivery_errors_total":
            errors[rest["type"]] = value
    return start, errors, total


def _from_executions(queue: Queue) -> tuple[Counter, list[float]]:
    """What the executions say happened (the reads /metrics used to run): errors by label, and the
    enqueue-to-start (s) of each job's first attempt."""
    rows = Execution.objects.filter(queue=queue).select_related("job").order_by("started_at")
    errors: Counter = Counter()
    first: dict[str, float] = {}
    for e in rows:
        if e.error is not None:
            errors[error_label(e.error.get("type"), e.http_status)] += 1
        if e.job is not None:  # a refused schedule tick has no job and started nothing
            first.setdefault(e.job_id, (e.started_at - e.job.created_at).total_seconds())
    return errors, sorted(first.values())


def _claim(queue: Queue, n: int) -> list[Job]:
    return job_claim(queue=queue, limit=n, lease_ms=60000)


def _due_again(queue: Queue) -> None:
    Job.objects.filter(queue=queue, state="delayed").update(state="waiting", run_at=timezone.now())


def test_engine_outcomes_fill_start_histogram_and_errors(workspace):
    queue = make_queue(workspace, "emails", delivery="push")
    insert_jobs(queue, 4, now=timezone.now() - timedelta(seconds=40))
    a, b, c, d = sorted(_claim(queue, 4), key=lambda j: j.id)
    jobs_record_outcomes(
        outcomes=[
            Outcome(a.id, a.lease_token, "success", http_status=200, duration_ms=5),
            Outcome(b.id, b.lease_token, "failure", error={"type": "connection_error", "message": "refused"}),
            Outcome(c.id, c.lease_token, "failure", error={"type": "http_error"}, http_status=503),
            Outcome(d.id, d.lease_token, "timeout", error={"type": "timeout", "message": "slow"}),
        ]
    )
    # The retries (attempt 2) end too: errors count every attempt, start latency only the first.
    _due_again(queue)
    again = _claim(queue, 3)
    assert sorted(j.attempts for j in again) == [2, 2, 2]
    jobs_record_outcomes(
        outcomes=[
            Outcome(j.id, j.lease_token, "failure", error={"type": "http_error"}, http_status=404)
            for j in again
        ]
    )

    start, errors, total = _series(_scrape(), queue)
    assert errors == {"connection_error": 1, "http_5xx": 1, "timeout": 1, "http_4xx": 3}
    assert start == {"0.05": 0, "1.0": 0, "30.0": 0, "60.0": 4, "300.0": 4, "+Inf": 4}
    assert total == pytest.approx(160, abs=8)
    expected_errors, first_starts = _from_executions(queue)
    assert errors == dict(expected_errors)
    assert total == pytest.approx(sum(first_starts), abs=0.01)


def test_deferred_first_attempt_counts_once(workspace):
    """A 503 with Retry-After gives the attempt back (attempts stays 1): the next start is not a first one."""
    queue = make_queue(workspace, "emails", delivery="push")
    insert_jobs(queue, 1, now=timezone.now() - timedelta(seconds=2))
    (job,) = _claim(queue, 1)
    error = {"type": "http_error", "http_status": 503}
    jobs_record_outcomes(
        outcomes=[Outcome(job.id, job.lease_token, "deferred", error=error, http_status=503)]
    )
    _due_again(queue)
    (job,) = _claim(queue, 1)
    assert job.attempts == 1
    jobs_record_outcomes(outcomes=[Outcome(job.id, job.lease_token, "success", duration_ms=1)])

    start, errors, _total = _series(_scrape(), queue)
    assert errors == {"http_5xx": 1}
    assert start["+Inf"] == 1 and start["30.0"] == 1 and start["1.0"] == 0


def test_sweeper_timeout_counts_the_lease_expiry(workspace):
    queue = make_queue(workspace, "emails", delivery="push")
    insert_jobs(queue, 1, now=timezone.now() - timedelta(milliseconds=1))
    (job,) = _claim(queue, 1)
    Job.objects.filter(pk=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    jobs_sweep()
    (job,) = _claim(queue, 1)  # attempt 2, back to waiting without backoff
    jobs_record_outcomes(outcomes=[Outcome(job.id, job.lease_token, "success", duration_ms=1)])

    start, errors, _total = _series(_scrape(), queue)
    assert errors == {"lease_expired": 1}
    assert start["1.0"] == 1 and start["+Inf"] == 1
    assert dict(_from_executions(queue)[0]) == errors


def test_pull_complete_fail_and_ack_fill_the_rollup(api_client, workspace):
    queue = make_queue(workspace, "work")
    insert_jobs(queue, 4, now=timezone.now() - timedelta(seconds=3))
    leased = api_client.post("/v1/queues/work/jobs/claim", {"limit": 4}, format="json").json()["data"]
    a, b, c, d = leased
    done = api_client.post(
        f"/v1/queues/work/jobs/{a['id']}/complete", {"lease_token": a["lease_token"]}, format="json"
    )
    assert done.status_code == 200, done.content
    failed = api_client.post(
        f"/v1/queues/work/jobs/{b['id']}/fail",
        {"lease_token": b["lease_token"], "error": {"message": "boom", "type": "connection_error"}},
        format="json",
    )
    assert failed.status_code == 200, failed.content
    body = {
        "completed": [{"id": c["id"], "lease_token": c["lease_token"]}],
        "failed": [
            {"id": d["id"], "lease_token": d["lease_token"], "error": {"message": "mine", "type": "x"}}
        ],
    }
    acked = api_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert acked.json()["acked"] == 2, acked.content

    start, errors, total = _series(_scrape(), queue)
    assert errors == {"connection_error": 1, "other": 1}
    assert start["1.0"] == 0 and start["30.0"] == 4 and start["+Inf"] == 4
    expected_errors, first_starts = _from_executions(queue)
    assert errors == dict(expected_errors)
    assert total == pytest.approx(sum(first_starts), abs=0.01)


def test_pull_worker_release_counts_its_attempts(api_client, workspace):
    queue = make_queue(workspace, "work")
    insert_jobs(queue, 2)
    worker = api_client.post("/v1/workers", {"name": "w1", "queues": ["work"]}, format="json").json()
    claimed = api_client.post(
        "/v1/queues/work/jobs/claim", {"limit": 2, "worker_id": worker["id"]}, format="json"
    )
    assert len(claimed.json()["data"]) == 2, claimed.content
    assert api_client.delete(f"/v1/workers/{worker['id']}").status_code == 204

    start, errors, _total = _series(_scrape(), queue)
    assert errors == {"worker_deregistered": 2}
    assert start["+Inf"] == 2


def test_push_delivery_fills_the_rollup(pro_client, private_targets, receiver):
    receiver.statuses = [503, 200]  # no Retry-After: a failed attempt, then the retry succeeds
    for name, url in (("emails", receiver.url), ("dead", "http://127.0.0.1:1/refused")):
        created = pro_client.post(
            "/v1/queues",
            {"name": name, "endpoint": {"url": url}, "retry_policy": {"max_attempts": 2}},
            format="json",
        )
        assert created.status_code == 201, created.content
        assert pro_client.post(f"/v1/queues/{name}/jobs", {"payload": {}}, format="json").status_code == 201
    emails, dead = Queue.objects.get(name="emails"), Queue.objects.get(name="dead")
    deliver_queue(emails.id)
    deliver_queue(dead.id)
    _due_again(emails)
    deliver_queue(emails.id)
    assert Job.objects.get(queue=emails).state == "completed"

    samples = _scrape()
    start, errors, _total = _series(samples, emails)
    assert errors == {"http_5xx": 1}
    assert start["+Inf"] == 1
    start, errors, _total = _series(samples, dead)
    assert errors == {"connection_error": 1}
    assert start["+Inf"] == 1
    for queue in (emails, dead):
        assert _series(samples, queue)[1] == dict(_from_executions(queue)[0])


def test_scrape_statements_do_not_grow_with_executions_and_skip_them(workspace):
    queues = [make_queue(workspace, f"q{i}", delivery="push", concurrency=100) for i in range(3)]
    empty = _render_queries()
    for queue in queues:
        insert_jobs(queue, 40, now=timezone.now() - timedelta(seconds=1))
        jobs = _claim(queue, 40)
        error = {"type": "http_error"}
        outcomes = [
            Outcome(j.id, j.lease_token, "success" if i % 2 else "failure", error=error, http_status=500)
            for i, j in enumerate(jobs)
        ]
        jobs_record_outcomes(outcomes=outcomes)
    assert Execution.objects.count() == 120
    busy = _render_queries()

    assert len(busy) == len(empty) == MAX_METRICS_QUERIES
    assert not [sql for sql in empty + busy if "jobs_execution" in sql]
    # And the data is there: 60 failed first attempts over the three queues.
    samples = _scrape()
    assert sum(_series(samples, q)[1].get("http_5xx", 0) for q in queues) == 60


def test_row_path_and_upsert_add_the_same(workspace, monkeypatch):
    """The SQLite row path (read-modify-write) and the PostgreSQL upsert merge the jsonb objects alike."""
    queue = make_queue(workspace, "emails")

    def delta() -> StatDelta:
        d = StatDelta(queue_id=queue.id, workspace_id=workspace.id)
        d.add_start(40.0)
        d.add_start(75000.0)
        d.add_error({"type": "http_error"}, 503)
        d.add_error({"type": "connection_error"}, None)
        return d

    now = timezone.now()
    stats_record(deltas=[delta()], now=now)  # set-based on this database
    monkeypatch.setattr(db.backend(), "SET_BASED", False)
    stats_record(deltas=[delta()], now=now)
    row = QueueMinuteStat.objects.get(queue=queue)
    assert row.start_hist == {"50": 2, "300000": 2}
    assert (row.start_count, row.start_sum_ms) == (4, 2 * 75040)
    assert row.errors == {"http_error|503": 2, "connection_error|": 2}
    monkeypatch.setattr(db.backend(), "SET_BASED", True)
    stats_record(deltas=[delta()], now=now)
    row.refresh_from_db()
    assert row.start_hist == {"50": 3, "300000": 3}
    assert row.errors == {"http_error|503": 3, "connection_error|": 3}


def test_operator_cancel_of_a_running_attempt_counts_it(api_client, workspace):
    queue = make_queue(workspace, "emails", delivery="push")
    insert_jobs(queue, 1, now=timezone.now() - timedelta(seconds=2))
    (job,) = _claim(queue, 1)
    assert api_client.delete(f"/v1/queues/emails/jobs/{job.id}").status_code == 204

    start, errors, _total = _series(_scrape(), queue)
    assert errors == {"cancelled": 1}
    assert start["1.0"] == 0 and start["30.0"] == 1 and start["+Inf"] == 1
    assert dict(_from_executions(queue)[0]) == errors


@pytest.mark.parametrize("set_based", [True, False])
def test_schedule_ticks_the_quota_refused_count_as_errors(workspace, plans, monkeypatch, set_based):
    from accounts.models import Plan
    from schedules import services
    from schedules.services import ticker

    queue = make_queue(workspace, "sync")
    Plan.objects.filter(code=workspace.plan_id).update(jobs_per_month=0)
    now = timezone.now()
    for name in ("a", "b"):
        services.schedule_create(
            workspace=workspace, now=now, data={"name": name, "queue": "sync", "interval_ms": 1000}
        )
    monkeypatch.setattr(ticker, "_set_based", lambda: set_based)
    assert services.schedules_fire_due(now=now + timedelta(seconds=1)) == 0
    assert Execution.objects.filter(status="quota_exceeded").count() == 2

    start, errors, _total = _series(_scrape(), queue)
    assert errors == {"quota_exceeded": 2}
    assert start == {}
    assert dict(_from_executions(queue)[0]) == errors
