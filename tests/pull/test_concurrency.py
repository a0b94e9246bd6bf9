"""Concurrency: 8 pull workers over real HTTP against a live threaded server."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections import Counter

import pytest
from django.db.models import Count

from accounts.services import workspace_create
from jobs.models import Execution, Job
from tests.factories import make_queue
from tests.pull.conftest import enqueue

WORKERS = 8
BATCH = 100
# 10,000 as the issue asks; an environment knob lets a slow machine run a smaller soak.
JOBS = int(os.environ.get("SPINDLE_PULL_STRESS_JOBS", "10000"))


def _post(base: str, key: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_eight_pull_workers_complete_every_job_once(live_server, plans):
    workspace, key = workspace_create(name="stress", plan_code="enterprise")
    queue = make_queue(workspace, "work", concurrency=JOBS)
    enqueue(workspace, queue, JOBS)
    base = live_server.url
    leases: list[tuple[str, str, int]] = []  # (job_id, lease_token, worker index), in claim order
    lost: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(WORKERS)

    def worker(index: int) -> None:
        try:
            registered = _post(base, key.raw, "/v1/workers", {"name": f"w{index}", "queues": ["work"]})
            start.wait()
            while True:
                claimed = _post(
                    base,
                    key.raw,
                    "/v1/queues/work/jobs/claim",
                    {"worker_id": registered["id"], "limit": BATCH, "wait_ms": 100},
                )["data"]
                if not claimed:
                    # No lease expires in this test, so an empty claim means no job is left to take.
                    return
                with lock:
                    leases.extend((j["id"], j["lease_token"], index) for j in claimed)
                acked = _post(
                    base,
                    key.raw,
                    "/v1/queues/work/jobs/ack",
                    {
                        "completed": [
                            {"id": j["id"], "lease_token": j["lease_token"], "result": index} for j in claimed
                        ]
                    },
                )
                with lock:
                    lost.extend(acked["lease_lost"])
                assert acked["acked"] + len(acked["lease_lost"]) == len(claimed)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    elapsed = time.monotonic() - started
    print(
        f"\n{WORKERS} pull workers: {JOBS} jobs claimed and acked over HTTP in {elapsed:.1f} s "
        f"({JOBS / elapsed:.0f} jobs/s)"
    )
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    # No job was handed to two holders: every (job, token) pair is distinct and every job was leased once.
    held = Counter(job_id for job_id, _token, _worker in leases)
    assert len(leases) == JOBS and len(held) == JOBS
    assert len({token for _job, token, _worker in leases}) == JOBS
    assert lost == []
    # Work was shared, not done by one worker.
    assert len({w for _job, _token, w in leases}) > 1

    # Every job completed exactly once, one execution each, by the worker that held it.
    assert Job.objects.filter(queue=queue, state="completed").count() == JOBS
    assert not Job.objects.filter(queue=queue).exclude(state="completed").exists()
    assert Execution.objects.filter(queue=queue).count() == JOBS
    assert Execution.objects.filter(queue=queue, status="success", attempt=1).count() == JOBS
    assert (
        not Execution.objects.filter(queue=queue)
        .values("job_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .exists()
    )
    by_worker = {job_id: w for job_id, _token, w in leases}
    sample = Job.objects.filter(queue=queue).values_list("id", "result")[:500]
    assert all(by_worker[job_id] == result for job_id, result in sample)
