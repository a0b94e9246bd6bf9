"""Noisy neighbours (PERF.md): two tenants whose endpoint is a 30-second tarpit, and a third tenant's throughput,
enqueue -> delivery latency and 1-second schedule, measured beside the same tenant alone in the same run.

Used by bench/run.py (`--only noisy`), which starts the endpoint and the worker as the Procfile runs it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import timedelta

BATCH = 20
TARPIT_TIMEOUT_MS = 30_000
TARPIT_JOBS = 200
ROUND_TIMEOUT_S = 90


def tarpit() -> tuple[socket.socket, str]:
    """A listening socket that never accepts: the kernel completes handshakes, nobody ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    host, port = sock.getsockname()
    return sock, f"http://{host}:{port}/tarpit"


def rounds(ws, queue, n: int, *, count: Callable[[], int], reset: Callable[[], None]) -> float:
    """`n` rounds of one BATCH-job enqueue each, waited out one after the other; jobs/s over the rounds."""
    from jobs.services.enqueue import job_enqueue_batch
    from jobs.specs import JobSpec

    busy = 0.0
    for _ in range(n):
        reset()
        t0 = time.perf_counter()
        job_enqueue_batch(
            workspace=ws, queue=queue, specs=[JobSpec(payload={"t": time.time()}) for _ in range(BATCH)]
        )
        while count() < BATCH:
            if time.perf_counter() - t0 > ROUND_TIMEOUT_S:
                raise RuntimeError(f"only {count()} of {BATCH} deliveries arrived in {ROUND_TIMEOUT_S} s")
            time.sleep(0.01)
        busy += time.perf_counter() - t0
    return n * BATCH / busy


def start_neighbours(make_queue: Callable[[str], tuple[object, object]]) -> socket.socket:
    """Two tenants, TARPIT_JOBS push jobs each to the tarpit; returns once both have deliveries in flight."""
    from jobs.models import Job
    from jobs.services.enqueue import job_enqueue_batch
    from jobs.specs import JobSpec

    sock, url = tarpit()
    queues = [make_queue(url) for _ in range(2)]
    for ws, q in queues:
        job_enqueue_batch(
            workspace=ws, queue=q, specs=[JobSpec(payload={"n": i}) for i in range(TARPIT_JOBS)]
        )
    deadline = time.time() + 60
    while not all(Job.objects.filter(queue=q, state="active").exists() for _ws, q in queues):
        if time.time() > deadline:
            raise RuntimeError("the tarpit tenants never got deliveries in flight")
        time.sleep(0.05)
    time.sleep(1.0)  # let them take whatever they can before the third tenant shows up
    return sock


def ticks_missed(schedule, *, settle_s: float = 1.5) -> tuple[int, int]:
    """(missed, planned): planned ticks of a fixed-interval schedule from its first run until `settle_s` ago
    that have no fired tick row (a stalled ticker merges a backlog into one catch-up firing)."""
    from django.utils import timezone

    from schedules.models import ScheduleTick

    fired = set(
        ScheduleTick.objects.filter(schedule=schedule, job_id__isnull=False).values_list("tick_at", flat=True)
    )
    end = timezone.now() - timedelta(seconds=settle_s)
    step = timedelta(milliseconds=schedule.interval_ms)
    at, planned, missed = schedule.next_run_at, 0, 0
    while at <= end:
        planned += 1
        missed += at not in fired
        at += step
    return missed, planned
