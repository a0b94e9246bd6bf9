"""Issue 9 item 2 (engine side): one job row with an out-of-range datetime, stored before input validation
existed, must not stop the claim, the outcomes or the sweeper of any other queue or tenant."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Workspace
from jobs.models import Job
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes, jobs_sweep
from queues.models import Queue
from tests.engine.conftest import past
from tests.factories import QueueFactory, insert_jobs

pytestmark = pytest.mark.django_db

BAD_RUN_AT = "0001-01-01T00:00:00+14:00"  # year 0 in UTC: PostgreSQL stores it, Python cannot load it


def set_bad_run_at(job_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET run_at = %s::timestamptz WHERE id = %s", [BAD_RUN_AT, job_id])


@pytest.fixture
def other_queue(other_workspace_and_key) -> Queue:
    ws: Workspace = other_workspace_and_key[0]
    return QueueFactory(workspace=ws, name="b", delivery="push")


def test_sweeper_survives_a_bad_row_and_fails_it_with_a_clear_error(make_queue, other_queue):
    qa = make_queue("a")
    bad = insert_jobs(qa, 1, state="active", attempts=1, lease_token="t" * 32, lease_expires_at=past(5000))[0]
    set_bad_run_at(bad.id)
    # Tenant B: a due delayed job and an expired lease, both for this sweep.
    due = insert_jobs(other_queue, 1, state="delayed", run_at=past(1000))[0]
    stalled = insert_jobs(
        other_queue, 1, state="active", attempts=1, lease_token="s" * 32, lease_expires_at=past(5000)
    )[0]

    jobs_sweep()

    assert Job.objects.get(pk=due.id).state == "waiting"
    assert Job.objects.get(pk=stalled.id).state == "waiting"
    row = Job.objects.get(pk=bad.id)  # loadable again
    assert row.state == "failed" and row.finished_at is not None
    assert row.last_error["type"] == "invalid_datetime"
    assert 1970 <= row.run_at.year <= 9999


def test_sweeper_promotes_a_bad_delayed_row_and_claim_survives_it(make_queue, other_queue):
    qa = make_queue("a")
    bad = insert_jobs(qa, 1, state="delayed", run_at=past(1000))[0]
    set_bad_run_at(bad.id)
    good_a = insert_jobs(qa, 1)[0]
    insert_jobs(other_queue, 2)

    jobs_sweep()
    claimed_a = job_claim(queue=qa, limit=10, lease_ms=60000)
    claimed_b = job_claim(queue=other_queue, limit=10, lease_ms=60000)

    assert len(claimed_b) == 2
    assert good_a.id in {j.id for j in claimed_a}
    # Whatever the claim did with the bad row, outcomes of the claimed batch are recorded.
    assert jobs_record_outcomes(outcomes=[Outcome(j.id, j.lease_token, "success") for j in claimed_a]) == []
    assert Job.objects.get(pk=good_a.id).state == "completed"
    Job.objects.get(pk=bad.id)  # loadable


def test_claim_of_a_waiting_bad_row_does_not_lose_the_batch(make_queue):
    qa = make_queue("a")
    bad = insert_jobs(qa, 1, priority=10)[0]
    set_bad_run_at(bad.id)
    others = insert_jobs(qa, 3)

    claimed = job_claim(queue=qa, limit=10, lease_ms=60000)

    assert {j.id for j in others} <= {j.id for j in claimed}
    lost = jobs_record_outcomes(outcomes=[Outcome(j.id, j.lease_token, "success") for j in claimed])
    assert lost == []
    assert Job.objects.filter(id__in=[j.id for j in others], state="completed").count() == 3


def test_group_queue_claim_survives_a_bad_row(make_queue):
    qa = make_queue("g", group_concurrency=2)
    bad = insert_jobs(qa, 1, priority=10, group="x")[0]
    set_bad_run_at(bad.id)
    others = insert_jobs(qa, 2, group="y")

    claimed = job_claim(queue=qa, limit=10, lease_ms=60000)

    assert {j.id for j in claimed} == {j.id for j in others}
    row = Job.objects.get(pk=bad.id)
    assert row.state == "failed" and row.last_error["type"] == "invalid_datetime"
