"""Fault tests with real processes (DESIGN.md invariants 1, 3, 4): each bounded well under a minute."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis
from django.conf import settings

from jobs.models import Execution, Job
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from queues.models import Event
from tests.e2e.conftest import wait_for
from tests.e2e.test_push_delivery import push_queue, state_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_killed_worker_job_is_redelivered_after_lease_and_completed_once(workspace, endpoint, start_worker):
    release = threading.Event()

    def respond(rec):
        if len(endpoint.requests) == 1:
            release.wait(20)  # the first delivery hangs until its worker is dead
        return 200, {}, '{"ok":true}'

    endpoint.respond = respond
    q = push_queue(workspace, endpoint, lease_ms=1500)
    w1 = start_worker()
    ((job, _),) = job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload={"k": 1})])
    wait_for(lambda: len(endpoint.requests) == 1)
    w1.kill9()
    release.set()
    start_worker()

    wait_for(lambda: state_of(job.id) == "completed", timeout_s=30)

    row = Job.objects.get(pk=job.id)
    assert row.attempts == 2
    assert endpoint.job_ids() == [job.id, job.id]
    first, second = (r.headers["webhook-id"] for r in endpoint.requests)
    assert first != second  # one webhook-id per attempt
    statuses = list(
        Execution.objects.filter(job_id=job.id).order_by("attempt").values_list("status", flat=True)
    )
    assert statuses == ["timeout", "success"]
    assert Event.objects.filter(job_id=job.id, type="job:stalled").count() == 1
    assert Event.objects.filter(job_id=job.id, type="job:completed").count() == 1


def _flush_my_redis() -> None:
    # Only this session's Redis databases (the broker and the cache), never the whole server.
    for url in (settings.CELERY_BROKER_URL, settings.CACHES["default"]["LOCATION"]):
        redis.Redis.from_url(url if isinstance(url, str) else url[0]).flushdb()


def test_flushing_redis_loses_no_job(workspace, endpoint, start_worker):
    q = push_queue(workspace, endpoint, concurrency=100)
    specs = [JobSpec(payload={"n": i}) for i in range(1000)]
    jobs = [j for j, _ in job_enqueue_batch(workspace=workspace, queue=q, specs=specs)]
    _flush_my_redis()  # every hint for those jobs is gone
    start_worker()

    wait_for(
        lambda: Job.objects.filter(queue=q, state="completed").count() == 1000, timeout_s=45, interval_s=0.2
    )

    delivered = Counter(endpoint.job_ids())
    assert set(delivered) == {j.id for j in jobs}
    assert Execution.objects.filter(queue=q, status="success").count() == 1000
    assert Event.objects.filter(type="job:completed").count() == 1000


def test_two_workers_never_exceed_queue_concurrency(workspace, endpoint, start_worker):
    endpoint.delay_s = 0.15
    q = push_queue(workspace, endpoint, concurrency=3)
    start_worker(concurrency=2)
    start_worker(concurrency=2, beat=False)
    job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload={"n": i}) for i in range(30)])

    wait_for(
        lambda: Job.objects.filter(queue=q, state="completed").count() == 30, timeout_s=40, interval_s=0.1
    )

    assert endpoint.max_in_flight <= 3
    assert endpoint.max_in_flight >= 2  # the limit was actually exercised
    assert len(endpoint.requests) == 30


def test_stale_lease_token_cannot_complete_a_job(workspace, endpoint, start_worker):
    q = push_queue(workspace, endpoint, lease_ms=300)
    ((job, _),) = job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload=1)])
    # A slow holder takes the lease first, then goes quiet past its lease.
    (stale,) = job_claim(queue=q, limit=1, lease_ms=300)
    start_worker()  # its sweeper rescues the lease; its delivery completes the job

    wait_for(lambda: state_of(job.id) == "completed", timeout_s=20)

    lost = jobs_record_outcomes(
        outcomes=[Outcome(job.id, stale.lease_token, "failure", error={"message": "late"})]
    )
    assert lost == [job.id]
    row = Job.objects.get(pk=job.id)
    assert row.state == "completed" and row.result["http_status"] == 200
    assert Event.objects.filter(job_id=job.id, type="job:completed").count() == 1
