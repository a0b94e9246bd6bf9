"""Issue 14 item 2: a batch in flight on the conveyor when the worker gets SIGTERM (warm shutdown) is finished
and recorded before the process exits, not left for the sweeper after its lease."""

from __future__ import annotations

import signal

import pytest

from jobs.models import Execution
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from tests.e2e.conftest import wait_for
from tests.factories import QueueFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_sigterm_during_a_delivery_finishes_it(workspace, endpoint, start_worker):
    queue = QueueFactory(
        workspace=workspace,
        name="q",
        delivery="push",
        lease_ms=60_000,  # no sweeper rescue within the test: only the drain can complete it
        endpoint={"url": endpoint.url, "timeout_ms": 10_000},
    )
    endpoint.delay_s = 2.0
    worker = start_worker(concurrency=2, beat=False)
    (job, _), *_ = job_enqueue_batch(workspace=workspace, queue=queue, specs=[JobSpec(payload={"n": 1})])
    wait_for(lambda: endpoint.in_flight == 1, timeout_s=15)

    worker.proc.send_signal(signal.SIGTERM)
    worker.proc.wait(timeout=30)

    job.refresh_from_db()
    assert job.state == "completed"
    assert list(Execution.objects.filter(job_id=job.id).values_list("status", flat=True)) == ["success"]
