"""`SpooledWorker` (the official SDK's worker loop) against a live server: 200 jobs with some dead-lettered, and
a lease lost mid-job (the worker drops the job; nothing completes twice)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobs.models import Execution, ExecutionStatus, Job, JobState
from jobs.services.engine.sweeper import jobs_sweep
from tests.spooled.conftest import sdk_client
from tests.spooled.sdk_alias import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def running(worker: Any) -> Iterator[Any]:
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the worker did not stop"


def test_worker_processes_200_jobs_and_dead_letters_the_failing_ones(base_url: str, live_key: str) -> None:
    spooled_client = sdk_client(base_url, live_key)
    for start in (0, 100):
        items = [{"payload": {"i": i, "fail": i % 10 == 0}} for i in range(start, start + 100)]
        bulk = spooled_client.jobs.bulk_enqueue(
            {"queue_name": "bulk", "jobs": items, "default_max_retries": 0}
        )
        assert bulk.success_count == 100
    seen: list[int] = []
    worker = sdk.SpooledWorker(spooled_client, queue_name="bulk", concurrency=8, poll_interval=0.05)

    @worker.process
    def handle(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.payload["i"])
        if ctx.payload["fail"]:
            raise RuntimeError(f"job {ctx.payload['i']} fails on purpose")
        return {"double": ctx.payload["i"] * 2}

    with running(worker):
        wait_for(
            lambda: not Job.objects.exclude(state__in=[JobState.COMPLETED, JobState.FAILED]).exists(),
            "200 jobs",
        )
    assert sorted(seen) == list(range(200))  # each exactly once
    assert Job.objects.filter(state=JobState.COMPLETED).count() == 180
    dead = list(spooled_client.jobs.dlq.list({"queue_name": "bulk", "limit": 100}))
    assert len(dead) == 20 and all(j.last_error.startswith("job ") for j in dead)
    one = Job.objects.get(state=JobState.COMPLETED, payload__i=7)
    assert one.result == {"double": 14}
    assert spooled_client.queues.get_stats("bulk").completed_jobs_24h == 180
    # The worker deregistered on stop.
    assert list(spooled_client.workers.list()) == []


def test_a_lost_lease_is_dropped_and_the_job_completes_once(base_url: str, live_key: str) -> None:
    spooled_client = sdk_client(base_url, live_key)
    job_id = spooled_client.jobs.create({"queue_name": "slow", "payload": {"n": 1}, "max_retries": 3}).id
    release, lost = threading.Event(), []
    worker = sdk.SpooledWorker(
        spooled_client,
        queue_name="slow",
        concurrency=1,
        poll_interval=0.05,
        lease_duration=5,
        heartbeat_fraction=0.2,
    )

    @worker.process
    def handle(ctx: Any) -> dict[str, Any]:
        release.wait(60)
        return {"by": "first"}

    worker.on("job:lease_lost", lambda event: lost.append(event))
    with running(worker):
        wait_for(lambda: Job.objects.filter(id=job_id, state=JobState.ACTIVE).exists(), "the claim")
        # The lease runs out (as if the worker had stalled): the sweeper hands the job back to the queue.
        Job.objects.filter(id=job_id).update(lease_expires_at=Job.objects.get(id=job_id).created_at)
        jobs_sweep()
        assert Job.objects.get(id=job_id).state == JobState.WAITING
        wait_for(lambda: bool(lost), "the worker to see its lease lost (409 LEASE_EXPIRED on heartbeat)")
        # Another worker takes the job and completes it.
        other = spooled_client.workers.register({"queue_name": "slow", "hostname": "other"})
        claimed = spooled_client.jobs.claim({"queue_name": "slow", "worker_id": other.id}).jobs[0]
        spooled_client.jobs.complete(
            job_id, {"worker_id": other.id, "lease_id": claimed.lease_id, "result": {"by": "second"}}
        )
        release.set()  # the first handler returns now: its result must be dropped
        time.sleep(1)
    assert lost[0].job_id == job_id
    job = Job.objects.get(id=job_id)
    assert (job.state, job.result) == (JobState.COMPLETED, {"by": "second"})
    outcomes = list(
        Execution.objects.filter(job_id=job_id).order_by("attempt").values_list("status", flat=True)
    )
    assert outcomes == [ExecutionStatus.TIMEOUT, ExecutionStatus.SUCCESS]
