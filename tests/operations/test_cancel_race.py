"""Cancel racing complete: two real transactions on PostgreSQL; exactly one outcome wins and the rows agree."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections

from jobs.models import Execution, Job
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes
from jobs.services.operations import job_cancel
from queues.models import Event
from tests.factories import make_queue

from .helpers import make_jobs

ROUNDS = 20


def race(*, workspace: Any, queue: Any, job: Job) -> dict[str, str]:
    """Start a cancel and a worker's completion of `job` at the same instant; report how each ended."""
    barrier = threading.Barrier(2)
    result: dict[str, str] = {}

    def cancel() -> None:
        try:
            barrier.wait()
            job_cancel(workspace=workspace, queue=queue, job_id=job.id)
            result["cancel"] = "ok"
        except Exception as exc:  # noqa: BLE001 - the losing side's error is part of the outcome
            result["cancel"] = type(exc).__name__
        finally:
            connections.close_all()

    def complete() -> None:
        try:
            barrier.wait()
            lost = jobs_record_outcomes(
                outcomes=[Outcome(job.id, job.lease_token, kind="success", result={"r": 1})]
            )
            result["complete"] = "lost" if lost else "ok"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=cancel), threading.Thread(target=complete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return result


@pytest.mark.django_db(transaction=True)
def test_cancel_racing_complete_leaves_one_consistent_outcome(workspace):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    queue = make_queue(workspace, "emails", concurrency=ROUNDS)
    make_jobs(queue, "waiting", ROUNDS)
    claimed = job_claim(queue=queue, limit=ROUNDS, lease_ms=60_000)
    assert len(claimed) == ROUNDS
    outcomes = {job.id: race(workspace=workspace, queue=queue, job=job) for job in claimed}

    for job in Job.objects.filter(queue=queue):
        result = outcomes[job.id]
        assert job.state in ("cancelled", "completed"), job.state
        assert job.lease_token is None and job.finished_at is not None
        execution = Execution.objects.get(id=job.execution_id)
        if job.state == "completed":
            # Complete won: the cancel saw a terminal job and was refused; the worker was not fenced out.
            assert result == {"complete": "ok", "cancel": "InvalidState"}, result
            assert job.result == {"r": 1}
            assert execution.status == "success"
            assert not Event.objects.filter(job_id=job.id, type="job:removed").exists()
            assert Event.objects.filter(job_id=job.id, type="job:completed").count() == 1
        else:
            # Cancel won: the worker's outcome was refused as lease-lost and nothing of it was written.
            assert result == {"cancel": "ok", "complete": "lost"}, result
            assert job.result is None
            assert execution.status == "failed" and execution.error["type"] == "cancelled"
            assert not Event.objects.filter(job_id=job.id, type="job:completed").exists()
            assert Event.objects.filter(job_id=job.id, type="job:removed").count() == 1
    assert len(outcomes) == ROUNDS
