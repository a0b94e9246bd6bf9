"""The set-based PostgreSQL paths: one-round-trip push claim, JSON-batched outcome writes, lean indexes."""

from __future__ import annotations

import pytest
from django.db import connection

from jobs.models import Execution, Job
from jobs.services.engine import (
    Outcome,
    job_claim,
    job_claim_push,
    jobs_deliver_outcomes,
    jobs_record_outcomes,
)
from queues.events import PendingEvent, events_emit
from queues.models import Event
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


def test_push_claim_returns_the_locked_queue_and_uses_its_lease(make_queue):
    q = make_queue(lease_ms=120000, concurrency=3)
    insert_jobs(q, 5)

    queue, jobs = job_claim_push(queue_id=q.id, limit=10)

    assert queue.pk == q.pk and queue.signing_secret == q.signing_secret
    assert len(jobs) == 3  # capped by concurrency, not by the limit
    for job in jobs:
        assert job.queue is queue and job.state == "active" and job.attempts == 1
        span = (job.lease_expires_at - job.started_at).total_seconds()
        assert span == pytest.approx(120, abs=0.01)
        assert Execution.objects.get(pk=job.execution_id).lease_token == job.lease_token
    assert Event.objects.filter(type="job:active", queue_name=q.name).count() == 3


def test_push_claim_refuses_pull_paused_and_missing_queues(make_queue):
    pull = make_queue("p", delivery="pull")
    insert_jobs(pull, 2)
    assert job_claim_push(queue_id=pull.id, limit=10) == (None, [])
    paused = make_queue("paused", paused=True)
    insert_jobs(paused, 2)
    queue, jobs = job_claim_push(queue_id=paused.id, limit=10)
    assert queue is not None and jobs == []
    assert job_claim_push(queue_id="que_missing", limit=10) == (None, [])
    assert Job.objects.filter(state="waiting").count() == 4


def test_empty_rate_limit_object_is_no_limit(make_queue):
    q = make_queue(rate_limit={})
    insert_jobs(q, 4)
    assert len(job_claim(queue=q, limit=10, lease_ms=60000)) == 4


def test_outcome_writes_sql_null_and_keeps_result_of_failed_attempts(make_queue):
    q = make_queue()
    insert_jobs(q, 2, result={"kept": True})
    a, b = job_claim(queue=q, limit=2, lease_ms=60000)

    lost = jobs_record_outcomes(
        outcomes=[
            Outcome(a.id, a.lease_token, "success", result=None, http_status=204, response_body=""),
            Outcome(b.id, b.lease_token, "failure", error={"message": "boom", "type": "http_error"}),
        ]
    )

    assert lost == []
    # JSON null would be the jsonb value 'null'; the ORM (and filters on isnull) expect SQL NULL.
    assert Job.objects.filter(
        pk=a.id, result__isnull=True, last_error__isnull=True, state="completed"
    ).exists()
    failed = Job.objects.get(pk=b.id)
    assert failed.state == "delayed" and failed.result == {"kept": True}
    assert failed.last_error == {"message": "boom", "type": "http_error"}
    assert Execution.objects.filter(pk=a.execution_id, error__isnull=True, status="success").exists()
    assert Execution.objects.get(pk=b.execution_id).error == {"message": "boom", "type": "http_error"}


def test_nul_characters_in_a_response_body_do_not_fail_the_batch(make_queue):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL refuses NUL in text and jsonb; SQLite stores it")
    q = make_queue()
    insert_jobs(q, 1)
    job = job_claim(queue=q, limit=1, lease_ms=60000)[0]

    lost = jobs_record_outcomes(
        outcomes=[
            Outcome(
                job.id,
                job.lease_token,
                "success",
                result={"body": "a\x00b"},
                http_status=200,
                response_body="a\x00b",
            )
        ]
    )

    assert lost == []
    assert Execution.objects.get(pk=job.execution_id).response_body == "ab"
    assert Job.objects.get(pk=job.id).result == {"body": "ab"}


def test_deliver_outcomes_reports_whether_ready_jobs_remain(make_queue):
    q = make_queue(concurrency=1)
    insert_jobs(q, 2)
    _queue, (job,) = job_claim_push(queue_id=q.id, limit=10)
    lost, more = jobs_deliver_outcomes(outcomes=[Outcome(job.id, job.lease_token, "success")], queue_id=q.id)
    assert (lost, more) == ([], True)
    _queue, (job,) = job_claim_push(queue_id=q.id, limit=10)
    lost, more = jobs_deliver_outcomes(outcomes=[Outcome(job.id, "0" * 32, "success")], queue_id=q.id)
    assert (lost, more) == ([job.id], False)
    assert Job.objects.get(pk=job.id).state == "active"


def test_events_emit_batches_and_refuses_unknown_types(workspace):
    events_emit([PendingEvent(workspace.id, "queue:paused", "q", None, {"n": i}) for i in range(3)])
    rows = list(Event.objects.filter(workspace=workspace).order_by("id"))
    assert [r.data for r in rows] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(r.created_at is not None for r in rows)
    with pytest.raises(ValueError):
        events_emit([PendingEvent(workspace.id, "job:exploded")])


def test_hot_tables_carry_no_redundant_indexes():
    if connection.vendor != "postgresql":
        pytest.skip("index layout is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('jobs_job', 'jobs_execution', 'jobs_event')"
        )
        names = {r[0] for r in cursor.fetchall()}
    assert not [n for n in names if n.endswith("_like")]
    assert (
        "jobs_job_payload_trgm" in names and "jobs_job_parent" in names and "jobs_exec_job_attempt" in names
    )
