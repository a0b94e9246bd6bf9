"""Issue 14 item 2: webhook deliveries and alert notifications to a slow target hold sockets on the conveyor's
loop, never the thread of the system task that claimed them, so the ticker keeps firing. Real worker processes,
real sockets."""

from __future__ import annotations

import base64
import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import OutboundStatus, WebhookDelivery, WebhookSubscription
from schedules import services as schedule_services
from schedules.models import ScheduleTick
from tests.e2e.conftest import wait_for
from tests.fairness.conftest import fast_queue, planned_ticks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WATCH_S = 6
# Far below the 10 s the sends wait on a tarpit (alerts.outbound.TIMEOUT_S), well above a loaded machine's lag.
LATE_S = 4


def test_deliveries_to_a_tarpit_do_not_stall_the_ticker(workspace, endpoint, tarpit, start_worker):
    sub = WebhookSubscription.objects.create(
        workspace=workspace,
        url=tarpit,
        events=["*"],
        secret="whsec_" + base64.b64encode(os.urandom(24)).decode(),
    )
    now = timezone.now()
    # Two deliveries fall due every second for longer than the watch: every send_due finds new rows, and each
    # would wait out the target's 10 s timeout on its system-task slot.
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            workspace=workspace,
            subscription=sub,
            event_id=f"evt_{i}",
            event_type="job:completed",
            body="{}",
            next_attempt_at=now + timedelta(milliseconds=500 * i),
        )
        for i in range(2 * (WATCH_S + 4))
    )
    fast_queue(workspace, endpoint.url)
    start_worker(concurrency=2)
    # The sends have started: rows are claimed (attempts bumped) and nothing has answered.
    wait_for(lambda: WebhookDelivery.objects.filter(attempts__gte=1).count() >= 2, timeout_s=15)
    time.sleep(2.0)

    schedule = schedule_services.schedule_create(
        workspace=workspace,
        data={"name": "beat", "queue": "fast", "interval_ms": 1000, "job": {"payload": {}}},
    )
    time.sleep(WATCH_S)
    window_end = timezone.now() - timedelta(seconds=1.5)
    ticks = dict(
        ScheduleTick.objects.filter(schedule=schedule, job_id__isnull=False).values_list(
            "tick_at", "created_at"
        )
    )
    planned = planned_ticks(schedule, window_end)
    assert len(planned) >= WATCH_S - 2
    assert [t for t in planned if t not in ticks] == []
    # Each on time: a ticker stalled behind the sends fires them only when a 10 s timeout frees a slot (a
    # backlog within the catch-up grace is fired tick by tick, late, so the check above alone would pass).
    assert [t for t in planned if ticks[t] - t > timedelta(seconds=LATE_S)] == []
    # The tarpit still holds the claimed deliveries: sent, unanswered, not yet recorded.
    assert WebhookDelivery.objects.filter(attempts__gte=1, status=OutboundStatus.PENDING).count() >= 4
