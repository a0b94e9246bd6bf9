"""Push delivery end to end: a real Celery worker, a real loopback endpoint, signatures verified by the
Standard Webhooks library (the foundation's first execution path)."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook

from jobs.models import Execution, Job
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from queues.models import Event, Queue
from tests.e2e.conftest import wait_for
from tests.factories import QueueFactory, signing_secret

pytestmark = pytest.mark.django_db(transaction=True)


def push_queue(workspace, endpoint, **fields) -> Queue:
    fields.setdefault("endpoint", {"url": endpoint.url, "headers": {"X-Custom": "yes"}, "timeout_ms": 5000})
    return QueueFactory(workspace=workspace, name=fields.pop("name", "hooks"), delivery="push", **fields)


def state_of(job_id: str) -> str:
    return Job.objects.get(pk=job_id).state


def test_job_is_delivered_signed_and_completed(workspace, endpoint, start_worker):
    q = push_queue(workspace, endpoint)
    start_worker()
    ((job, created),) = job_enqueue_batch(
        workspace=workspace, queue=q, specs=[JobSpec(payload={"hello": "world"}, name="greet", tags=["t:1"])]
    )
    assert created

    wait_for(lambda: state_of(job.id) == "completed")

    row = Job.objects.get(pk=job.id)
    assert row.result == {"http_status": 200, "body": '{"ok":true}'}
    assert row.attempts == 1 and row.finished_at is not None
    (req,) = endpoint.requests
    payload = Webhook(q.signing_secret).verify(req.body, req.headers)
    assert payload == {
        "id": job.id,
        "queue": "hooks",
        "name": "greet",
        "payload": {"hello": "world"},
        "tags": ["t:1"],
        "attempt": 1,
        "created_at": json.loads(req.body)["created_at"],
    }
    (exe,) = Execution.objects.filter(job_id=job.id)
    assert req.headers["webhook-id"] == exe.id
    assert req.headers["Spindle-Job-Id"] == job.id and req.headers["Spindle-Attempt"] == "1"
    assert req.headers["X-Custom"] == "yes"
    assert req.headers["User-Agent"].startswith("Spindle/")
    assert (exe.status, exe.http_status, exe.attempt) == ("success", 200, 1)
    assert exe.duration_ms is not None and exe.response_body == '{"ok":true}'
    assert Event.objects.filter(job_id=job.id, type="job:completed").count() == 1


def test_rotated_secret_signs_with_both(workspace, endpoint, start_worker):
    from datetime import timedelta

    from django.utils import timezone

    old = signing_secret()
    q = push_queue(
        workspace,
        endpoint,
        previous_signing_secret=old,
        previous_secret_expires_at=timezone.now() + timedelta(hours=24),
    )
    start_worker()
    ((job, _),) = job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload=1)])
    wait_for(lambda: state_of(job.id) == "completed")
    (req,) = endpoint.requests
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    Webhook(q.signing_secret).verify(req.body, req.headers)
    Webhook(old).verify(req.body, req.headers)


def test_failing_target_retries_then_dead_letters(workspace, endpoint, start_worker):
    endpoint.respond = lambda rec: (500, {}, '{"error":"nope"}')
    q = push_queue(
        workspace,
        endpoint,
        retry_policy={"max_attempts": 3, "backoff": "fixed", "initial_delay_ms": 100, "jitter": False},
    )
    start_worker()
    ((job, _),) = job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload={"x": 1})])

    wait_for(lambda: state_of(job.id) == "failed")

    row = Job.objects.get(pk=job.id)
    assert row.attempts == 3
    assert row.last_error["http_status"] == 500 and row.last_error["type"] == "http_error"
    statuses = list(
        Execution.objects.filter(job_id=job.id).order_by("attempt").values_list("attempt", "status")
    )
    assert statuses == [(1, "failed"), (2, "failed"), (3, "dead_letter")]
    assert len(endpoint.requests) == 3
    assert Event.objects.filter(job_id=job.id, type="job:dead").count() == 1


def test_redirect_is_a_failed_attempt_and_410_fails_at_once(workspace, endpoint, start_worker):
    endpoint.respond = lambda rec: (
        (302, {"Location": "http://127.0.0.1:1/"}, "") if '"redirect"' in rec.body else (410, {}, "gone")
    )
    q = push_queue(
        workspace,
        endpoint,
        retry_policy={"max_attempts": 1, "backoff": "fixed", "initial_delay_ms": 100, "jitter": False},
    )
    start_worker()
    (redir, _), (gone, _) = job_enqueue_batch(
        workspace=workspace,
        queue=q,
        specs=[JobSpec(payload="redirect", max_attempts=1), JobSpec(payload="gone", max_attempts=5)],
    )
    wait_for(lambda: state_of(redir.id) == "failed" and state_of(gone.id) == "failed")
    assert Job.objects.get(pk=redir.id).last_error["http_status"] == 302
    g = Job.objects.get(pk=gone.id)
    assert g.attempts == 1 and g.last_error["http_status"] == 410
    assert len(endpoint.requests) == 2


def test_retry_after_defers_without_using_an_attempt(workspace, endpoint, start_worker):
    answers = iter([(429, {"Retry-After": "1"}, "slow down")])
    endpoint.respond = lambda rec: next(answers, (200, {}, "ok"))
    q = push_queue(workspace, endpoint)
    start_worker()
    ((job, _),) = job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload=1, max_attempts=1)])
    wait_for(lambda: state_of(job.id) == "completed")
    row = Job.objects.get(pk=job.id)
    assert (row.attempts, row.deferrals) == (1, 1)
    assert list(Execution.objects.filter(job_id=job.id).order_by("id").values_list("status", flat=True)) == [
        "deferred",
        "success",
    ]
    first, second = endpoint.requests
    assert second.at - first.at >= 0.9
