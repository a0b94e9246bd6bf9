"""Issue 14 item 2: two tenants whose endpoint is a 30-second tarpit fill no worker thread, so a third tenant's
batch completes promptly and its 1-second schedule misses no tick. Real worker processes, real sockets."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import workspace_create
from jobs.models import Job
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from schedules import services as schedule_services
from schedules.models import ScheduleTick
from tests.e2e.conftest import wait_for
from tests.fairness.conftest import fast_queue, planned_ticks, tarpit_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TARPIT_TIMEOUT_MS = 30_000
WATCH_S = 6


def test_two_tarpit_tenants_leave_a_third_unharmed(
    workspace, other_workspace_and_key, plans, endpoint, tarpit, start_worker
):
    slow_a = tarpit_queue(workspace, tarpit, timeout_ms=TARPIT_TIMEOUT_MS)
    slow_c = tarpit_queue(other_workspace_and_key[0], tarpit, timeout_ms=TARPIT_TIMEOUT_MS)
    third = workspace_create(name="third", plan_code="free")[0]
    fast = fast_queue(third, endpoint.url)
    start_worker(concurrency=4)
    for q in (slow_a, slow_c):
        job_enqueue_batch(
            workspace=q.workspace, queue=q, specs=[JobSpec(payload={"n": i}) for i in range(200)]
        )
    # Both tarpit tenants have deliveries in flight (before the fix, every worker slot waited on them).
    wait_for(
        lambda: all(Job.objects.filter(queue=q, state="active").exists() for q in (slow_a, slow_c)),
        timeout_s=15,
    )
    time.sleep(1.0)

    schedule = schedule_services.schedule_create(
        workspace=third, data={"name": "beat", "queue": "fast", "interval_ms": 1000, "job": {"payload": {}}}
    )
    started = time.monotonic()
    ready = job_enqueue_batch(
        workspace=third, queue=fast, specs=[JobSpec(payload={"n": i}) for i in range(20)]
    )
    ids = [j.id for j, _ in ready]
    # Alone this takes well under a second; before the fix it waited out the tarpit's 30 s timeout.
    wait_for(lambda: Job.objects.filter(id__in=ids, state="completed").count() == len(ids), timeout_s=5)
    assert time.monotonic() - started < 5

    # Every planned tick of the 1-second schedule over the next seconds fires (none merged into a catch-up).
    time.sleep(WATCH_S)
    window_end = timezone.now() - timedelta(seconds=1.5)
    fired = set(
        ScheduleTick.objects.filter(schedule=schedule, job_id__isnull=False).values_list("tick_at", flat=True)
    )
    planned = planned_ticks(schedule, window_end)
    assert len(planned) >= WATCH_S - 2
    assert [t for t in planned if t not in fired] == []
    # The tarpit tenants still hold their deliveries (capped, not stopped).
    assert Job.objects.filter(queue__in=[slow_a, slow_c], state="active").exists()
