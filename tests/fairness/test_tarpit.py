"""Issue 9 item 5: a tenant whose endpoint is a tarpit must not starve other tenants' deliveries, the sweeper
or the schedule ticker. Real worker processes, real sockets."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from schedules import services as schedule_services
from schedules.models import ScheduleTick
from tests.e2e.conftest import wait_for
from tests.fairness.conftest import fast_queue, tarpit_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TARPIT_TIMEOUT_MS = 20_000


def test_tarpit_tenant_does_not_starve_others(
    workspace, other_workspace_and_key, endpoint, tarpit, start_worker
):
    other = other_workspace_and_key[0]
    slow = tarpit_queue(workspace, tarpit, timeout_ms=TARPIT_TIMEOUT_MS)
    fast = fast_queue(other, endpoint.url)
    # Small batches: the tarpit queue's backlog becomes many deliver tasks, each able to pin a worker slot.
    start_worker(concurrency=4, extra_env={"SPINDLE_DELIVERY_BATCH": "5"})
    job_enqueue_batch(workspace=workspace, queue=slow, specs=[JobSpec(payload={"n": i}) for i in range(200)])
    # Let the tarpit's deliveries take every slot they can before the other tenant shows up.
    wait_for(lambda: Job.objects.filter(queue=slow, state="active").count() >= 10, timeout_s=10)
    time.sleep(1.0)

    started = time.monotonic()
    ready = job_enqueue_batch(
        workspace=other, queue=fast, specs=[JobSpec(payload={"n": i}) for i in range(5)]
    )
    delayed = job_enqueue_batch(
        workspace=other,
        queue=fast,
        specs=[JobSpec(payload={"d": 1}, run_at=timezone.now() + timedelta(seconds=1))],
    )
    schedule = schedule_services.schedule_create(
        workspace=other, data={"name": "beat", "queue": "fast", "interval_ms": 1000, "job": {"payload": {}}}
    )
    ids = [j.id for j, _ in ready + delayed]

    # Well within the tarpit's 20 s timeout: before the fix every worker slot waited it out.
    wait_for(lambda: Job.objects.filter(id__in=ids, state="completed").count() == len(ids), timeout_s=8)
    assert time.monotonic() - started < 8
    # The ticker keeps firing the other tenant's schedule.
    wait_for(lambda: ScheduleTick.objects.filter(schedule=schedule).count() >= 2, timeout_s=5)
    # The tarpit tenant still holds some deliveries in flight (it is capped, not stopped).
    assert Job.objects.filter(queue=slow, state="active").exists()
