"""Issue 14 item 6: two web nodes and two worker nodes on one PostgreSQL and one Redis; kill -9 a worker node.

Every node runs the Procfile's own commands (tests/scaleout/nodes.py), with its own var dir and port; each
worker node runs its own beat thread, as `make run` does, so two beats tick the schedules until one dies.
Push jobs go round-robin through both web nodes to a loopback endpoint that records each delivery.

Checked: no job lost (all completed), exactly one success execution per job, every delivered job recorded
(duplicate HTTP deliveries are counted: delivery is at-least-once, a job whose worker died mid-batch is sent
again after its lease), and the 1-second schedules fired exactly once per second over the whole window.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from accounts.models import Plan
from accounts.services import workspace_create
from jobs.models import Execution, Job
from queues.models import Event
from schedules.models import Schedule, ScheduleTick
from tests.scaleout.nodes import Node, api, start_nodes, stop_all
from tests.scaleout.recorder import Recorder

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JOBS = int(os.environ.get("SPINDLE_SCALEOUT_JOBS", "5000"))
BATCH = 100
PUSH_QUEUES = 4
SCHEDULES = 3
TIMEOUT_MS = 3000  # the loopback endpoint answers at once, but this machine is loaded
LEASE_MS = TIMEOUT_MS + 5000  # the floor the API accepts
# Short engine timings (refused unless SPINDLE_TESTING=1): a dead worker's leases are found within a second.
NODE_ENV = {
    "SPINDLE_TESTING": "1",
    "SPINDLE_ALLOW_PRIVATE_TARGETS": "1",
    # The production interval: at 0.5 s two beats' sweeps flooded this 2-core machine's workers until the
    # ticker's messages expired unread (a finding for the engine, not a property of scale-out).
    "SPINDLE_SWEEP_INTERVAL_S": "1.0",
    "SPINDLE_MIN_LEASE_MS": "100",
    "SPINDLE_BACKOFF_SCALE": "0.001",
}


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.25)


def _setup_tenant(web: list[Node], key: str, endpoint: str) -> list[str]:
    """Push queues and 1-second schedules, created through the web nodes; returns the push queue names."""
    names = [f"push-{i}" for i in range(PUSH_QUEUES)]
    for i, name in enumerate([*names, "ticks"]):
        api(
            web[i % 2],
            key,
            "POST",
            "/v1/queues",
            {
                "name": name,
                "delivery": "push",
                "lease_ms": LEASE_MS,
                "concurrency": 100,
                "endpoint": {"url": endpoint, "timeout_ms": TIMEOUT_MS},
            },
        )
    for i in range(SCHEDULES):
        api(
            web[i % 2],
            key,
            "POST",
            "/v1/schedules",
            {"name": f"every-second-{i}", "queue": "ticks", "interval_ms": 1000},
        )
    return names


def _enqueue_round_robin(web: list[Node], key: str, queues: list[str]) -> None:
    for b in range(JOBS // BATCH):
        jobs = [{"name": "work", "payload": {"n": b * BATCH + i}} for i in range(BATCH)]
        api(web[b % 2], key, "POST", f"/v1/queues/{queues[b % len(queues)]}/jobs/batch", {"jobs": jobs})


def _completed(queues: list[str]) -> int:
    return Job.objects.filter(queue__name__in=queues, state="completed").count()


def _tick_counts(killed_at: float, stopped_at: float) -> tuple[int, int, int]:
    """(ticks, missed, doubled) of the 1-second schedules, each from its first tick to its last, across the kill.

    A one-second schedule's ticks are exactly one second apart: a longer gap is missed seconds (a stalled ticker
    merges its backlog into one firing), a shorter one or a repeated (schedule, tick) a doubled tick.
    """
    total = missed = doubled = 0
    for s in Schedule.objects.all():
        ticks = list(
            ScheduleTick.objects.filter(schedule=s).order_by("tick_at").values_list("tick_at", "job_id")
        )
        times = [t for t, _ in ticks]
        steps = [(b - a) / timedelta(seconds=1) for a, b in zip(times, times[1:], strict=False)]
        missed += sum(round(step) - 1 for step in steps if step > 1)
        doubled += sum(1 for step in steps if step < 1)
        # The window covers the kill and runs to the end of the deliveries.
        assert times[0].timestamp() < killed_at - 2 and times[-1].timestamp() > stopped_at - 4, (
            s.name,
            times,
        )
        job_ids = [j for _, j in ticks]
        assert None not in job_ids and len(set(job_ids)) == len(job_ids)  # one job per tick, no job shared
        assert Job.objects.filter(schedule_id=s.id).count() == len(ticks)
        total += len(ticks)
    return total, missed, doubled


def _each_schedule_ticked(times: int) -> bool:
    counts = Counter(ScheduleTick.objects.values_list("schedule_id", flat=True))
    return len(counts) == SCHEDULES and min(counts.values()) >= times


def test_two_web_two_worker_nodes_survive_kill9_of_a_worker_node(plans, tmp_path):
    Plan.objects.filter(code="free").update(
        requests_per_minute=None, jobs_per_month=None, max_queues=None, max_schedules=None
    )
    _, key = workspace_create(name="scale", plan_code="free")
    env = {**NODE_ENV, "SPINDLE_CELERY_QUEUE": f"scale-{uuid.uuid4().hex[:8]}"}
    started = time.monotonic()
    nodes: list[Node] = []
    with Recorder() as endpoint:
        try:
            nodes = start_nodes(tmp_path, web=2, workers=2, env=env)
            web = nodes[2:]
            print(f"\nscale-out: nodes up after {time.monotonic() - started:.1f}s")
            queues = _setup_tenant(web, key.raw, endpoint.url)
            _enqueue_round_robin(web, key.raw, queues)
            enqueued_s = time.monotonic() - started
            wait_until(lambda: _completed(queues) >= JOBS // 4, timeout_s=90, what="a quarter completed")
            # Mid-delivery (the node to kill sent a job to the endpoint in the last 0.3 s), and late enough that the
            # tick window checked below starts before the kill: every schedule has ticked for 2 seconds.
            wait_until(
                lambda: _each_schedule_ticked(3) and endpoint.sent_since(nodes[0].local_ports(), 0.3),
                timeout_s=60,
                what="worker0 delivering, every schedule ticking",
            )
            nodes[0].kill9()
            killed_at, killed_after = time.time(), time.monotonic() - started
            wait_until(lambda: _completed(queues) == JOBS, timeout_s=120, what="every job completed")
            stopped_at = time.time()
            for i in range(SCHEDULES):
                api(web[i % 2], key.raw, "PATCH", f"/v1/schedules/every-second-{i}/pause")
            time.sleep(1.5)  # a tick already in flight commits
            wait_until(
                lambda: not Job.objects.exclude(state="completed").exists(), timeout_s=30, what="ticks done"
            )
        finally:
            stop_all(nodes)
        delivered = endpoint.counts()

    push_ids = set(Job.objects.filter(queue__name__in=queues).values_list("id", flat=True))
    assert len(push_ids) == JOBS and _completed(queues) == JOBS  # 0 lost
    successes = Counter(Execution.objects.filter(status="success").values_list("job_id", flat=True))
    assert set(successes) == set(Job.objects.values_list("id", flat=True))
    assert max(successes.values()) == 1  # 0 completed twice
    assert Event.objects.filter(type="job:completed").count() == len(successes)
    assert push_ids <= set(delivered)
    ticks, missed, doubled = _tick_counts(killed_at, stopped_at)
    duplicates = sum(n - 1 for n in delivered.values())
    stalled = Counter(Execution.objects.exclude(status="success").values_list("status", flat=True))
    print(
        f"\nscale-out: {JOBS} push jobs + {ticks} schedule ticks ({missed} missed, {doubled} doubled) over 2 web + "
        f"2 worker nodes; enqueued in "
        f"{enqueued_s:.1f}s; worker node killed after {killed_after:.1f}s"
    )
    print(
        f"scale-out: duplicate HTTP deliveries {duplicates} (jobs delivered twice: "
        f"{sum(1 for n in delivered.values() if n > 1)}), other executions {dict(stalled)}, "
        f"total {time.monotonic() - started:.1f}s"
    )
    assert (missed, doubled) == (0, 0)
