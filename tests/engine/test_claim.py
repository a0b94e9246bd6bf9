"""Claiming: order, pause, concurrency, group round-robin, rate limit (DESIGN.md invariant 3)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services.engine import job_claim
from queues.models import Event
from tests.factories import insert_jobs
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db


def test_claim_orders_by_priority_then_run_at_then_id(make_queue):
    q = make_queue()
    now = timezone.now()
    low = insert_jobs(q, 1, priority=0, run_at=now - timedelta(seconds=10))[0]
    high = insert_jobs(q, 1, priority=5, run_at=now - timedelta(seconds=1))[0]
    old = insert_jobs(q, 1, priority=0, run_at=now - timedelta(seconds=20))[0]
    tie_a, tie_b = insert_jobs(q, 2, priority=0, run_at=now - timedelta(seconds=5))

    claimed = job_claim(queue=q, limit=10, lease_ms=60000)

    assert [j.id for j in claimed] == [high.id, old.id, low.id, tie_a.id, tie_b.id]


def test_claim_leases_and_records_executions(make_queue):
    q = make_queue()
    insert_jobs(q, 3)

    claimed = job_claim(queue=q, limit=2, lease_ms=60000, worker_id="wkr_x")

    assert len(claimed) == 2
    tokens = {j.lease_token for j in claimed}
    assert len(tokens) == 2 and all(len(t) == 32 for t in tokens)
    for job in claimed:
        row = Job.objects.get(pk=job.id)
        assert row.state == "active" and row.attempts == 1 and row.lease_token == job.lease_token
        assert row.lease_expires_at > timezone.now() + timedelta(seconds=50)
        exe = Execution.objects.get(pk=row.execution_id)
        assert (exe.status, exe.attempt, exe.lease_token, exe.worker_id) == (
            "running",
            1,
            job.lease_token,
            "wkr_x",
        )
    assert Event.objects.filter(type="job:active").count() == 2
    assert Job.objects.filter(state="waiting").count() == 1


def test_claim_skips_paused_queue_and_paused_names(make_queue):
    q = make_queue(paused=True)
    insert_jobs(q, 2)
    assert job_claim(queue=q, limit=10, lease_ms=60000) == []
    assert Job.objects.filter(state="waiting").count() == 2

    q2 = make_queue("q2", paused_job_names=["slow"])
    insert_jobs(q2, 2, name="slow")
    fast = insert_jobs(q2, 1, name="fast")
    unnamed = insert_jobs(q2, 1)
    claimed = job_claim(queue=q2, limit=10, lease_ms=60000)
    assert {j.id for j in claimed} == {fast[0].id, unnamed[0].id}


def test_claim_reads_pause_committed_after_the_caller_loaded_the_queue(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    type(q).objects.filter(pk=q.pk).update(paused=True)
    assert job_claim(queue=q, limit=1, lease_ms=60000) == []


def test_concurrency_counts_jobs_already_active(make_queue):
    q = make_queue(concurrency=3)
    insert_jobs(q, 10)
    assert len(job_claim(queue=q, limit=2, lease_ms=60000)) == 2
    assert len(job_claim(queue=q, limit=5, lease_ms=60000)) == 1
    assert job_claim(queue=q, limit=5, lease_ms=60000) == []
    assert Job.objects.filter(state="active").count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrency_holds_across_threads_claiming_at_once(make_queue):
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections: PostgreSQL (SQLite serialises writers instead)")
    q = make_queue(concurrency=5)
    insert_jobs(q, 50)
    barrier = threading.Barrier(4)
    results: list[int] = []

    def claimer():
        barrier.wait()
        for _ in range(3):
            results.append(len(job_claim(queue=q, limit=4, lease_ms=60000)))

    assert run_in_threads(claimer, 4, timeout_s=None) == []
    assert sum(results) == 5
    assert Job.objects.filter(state="active").count() == 5
    assert Execution.objects.count() == 5


def test_group_concurrency_caps_each_group_and_serves_round_robin(make_queue):
    q = make_queue(group_concurrency=1, concurrency=100)
    now = timezone.now()
    a = insert_jobs(q, 3, group="a", run_at=now - timedelta(seconds=30))
    b = insert_jobs(q, 3, group="b", run_at=now - timedelta(seconds=20))
    c = insert_jobs(q, 3, group="c", run_at=now - timedelta(seconds=10))

    first = job_claim(queue=q, limit=10, lease_ms=60000)
    # One per group: the cap is 1 and the oldest job of each group goes first.
    assert sorted(j.id for j in first) == sorted([a[0].id, b[0].id, c[0].id])
    assert job_claim(queue=q, limit=10, lease_ms=60000) == []


def test_groups_rotate_across_claims(make_queue):
    q = make_queue(group_concurrency=5, concurrency=100)
    now = timezone.now()
    # Group a's jobs are all older, so plain ordering would serve a three times in a row.
    insert_jobs(q, 3, group="a", run_at=now - timedelta(seconds=30))
    insert_jobs(q, 3, group="b", run_at=now - timedelta(seconds=20))
    insert_jobs(q, 3, group="c", run_at=now - timedelta(seconds=10))

    served = [job_claim(queue=q, limit=1, lease_ms=60000)[0].group for _ in range(6)]
    assert served == ["a", "b", "c", "a", "b", "c"]


def test_group_round_robin_interleaves_within_one_claim(make_queue):
    q = make_queue(group_concurrency=2, concurrency=100)
    now = timezone.now()
    insert_jobs(q, 4, group="a", run_at=now - timedelta(seconds=30))
    insert_jobs(q, 4, group="b", run_at=now - timedelta(seconds=10))
    claimed = job_claim(queue=q, limit=10, lease_ms=60000)
    assert [j.group for j in claimed] == ["a", "b", "a", "b"]


def test_rate_limit_caps_claims_in_the_window(make_queue):
    q = make_queue(rate_limit={"max": 3, "per_ms": 60000}, concurrency=100)
    insert_jobs(q, 10)
    assert len(job_claim(queue=q, limit=2, lease_ms=60000)) == 2
    assert len(job_claim(queue=q, limit=5, lease_ms=60000)) == 1
    assert job_claim(queue=q, limit=5, lease_ms=60000) == []
    # Claims older than the window no longer count.
    Execution.objects.update(started_at=timezone.now() - timedelta(minutes=2))
    assert len(job_claim(queue=q, limit=5, lease_ms=60000)) == 3


def test_claim_ignores_delayed_and_other_queues(make_queue):
    q = make_queue()
    other = make_queue("other")
    insert_jobs(q, 1, run_at=timezone.now() + timedelta(hours=1))
    insert_jobs(other, 1)
    assert job_claim(queue=q, limit=10, lease_ms=60000) == []
