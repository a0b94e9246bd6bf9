"""The sweeper and flows: due promotion, lease rescue by the database clock, parents released by children."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services.dispatch import kick_key
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes, jobs_sweep
from queues.models import Event
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


def test_sweep_promotes_due_delayed_jobs_only(make_queue):
    q = make_queue()
    due = insert_jobs(q, 2, run_at=timezone.now() - timedelta(seconds=1), state="delayed")
    later = insert_jobs(q, 1, run_at=timezone.now() + timedelta(hours=1))
    result = jobs_sweep()
    assert result["promoted"] == 2
    states = dict(Job.objects.values_list("id", "state"))
    assert [states[j.id] for j in due] == ["waiting", "waiting"]
    assert states[later[0].id] == "delayed"
    assert Event.objects.filter(type="job:waiting").count() == 2


def test_sweep_rescues_expired_leases_by_db_clock(make_queue):
    q = make_queue()
    insert_jobs(q, 2, max_attempts=3)
    a, b = job_claim(queue=q, limit=2, lease_ms=60000)
    # Expire one lease by the database clock.
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE jobs_job SET lease_expires_at = now() - interval '1 second' WHERE id = %s", [a.id]
            )
    else:
        Job.objects.filter(pk=a.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    result = jobs_sweep()
    assert result["rescued"] == 1
    row = Job.objects.get(pk=a.id)
    assert (row.state, row.lease_token, row.attempts) == ("waiting", None, 1)
    assert Execution.objects.get(pk=a.execution_id).status == "timeout"
    assert Event.objects.filter(job_id=a.id, type="job:stalled").count() == 1
    assert Job.objects.get(pk=b.id).state == "active"
    # The old lease holder is fenced off; the rescued job is claimable again.
    assert jobs_record_outcomes(outcomes=[Outcome(a.id, a.lease_token, "success")]) == [a.id]
    again = job_claim(queue=q, limit=5, lease_ms=60000)
    assert [j.id for j in again] == [a.id] and again[0].attempts == 2


def test_sweep_fails_expired_lease_on_last_attempt(make_queue):
    q = make_queue()
    insert_jobs(q, 1, max_attempts=1)
    (a,) = job_claim(queue=q, limit=1, lease_ms=60000)
    Job.objects.filter(pk=a.id).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    jobs_sweep()
    assert Job.objects.get(pk=a.id).state == "failed"
    assert Execution.objects.get(pk=a.execution_id).status == "dead_letter"
    assert Event.objects.filter(job_id=a.id, type="job:dead").exists()


def test_sweep_kicks_push_queues_with_ready_jobs(make_queue, django_capture_on_commit_callbacks):
    q = make_queue()
    idle = make_queue("idle")
    insert_jobs(q, 1)
    with django_capture_on_commit_callbacks(execute=True):
        result = jobs_sweep()
    assert result["kicked"] == 1
    assert cache.get(kick_key(q.id)) == 1
    assert cache.get(kick_key(idle.id)) is None


def test_short_leases_are_clamped_to_the_minimum(make_queue, settings):
    settings.SPINDLE_MIN_LEASE_MS = 1000
    q = make_queue()
    insert_jobs(q, 1)
    (a,) = job_claim(queue=q, limit=1, lease_ms=1)
    assert Job.objects.get(pk=a.id).lease_expires_at > timezone.now() + timedelta(milliseconds=500)


def _flow(make_queue, **parent_fields):
    q = make_queue()
    parent = insert_jobs(q, 1, state="delayed", wait_for_children=True, **parent_fields)[0]
    children = insert_jobs(q, 2, parent_id=parent.id, max_attempts=1)
    return q, parent, children


def test_parent_released_when_all_children_complete(make_queue):
    q, parent, _ = _flow(make_queue)
    jobs_sweep()  # a waiting parent is not "due" while children run
    assert Job.objects.get(pk=parent.id).state == "delayed"
    a, b = job_claim(queue=q, limit=2, lease_ms=60000)
    jobs_record_outcomes(outcomes=[Outcome(a.id, a.lease_token, "success")])
    assert Job.objects.get(pk=parent.id).state == "delayed"
    jobs_record_outcomes(outcomes=[Outcome(b.id, b.lease_token, "success")])
    assert Job.objects.get(pk=parent.id).state == "waiting"


def test_child_failure_fails_parent(make_queue):
    q, parent, _ = _flow(make_queue)
    a, b = job_claim(queue=q, limit=2, lease_ms=60000)
    jobs_record_outcomes(
        outcomes=[Outcome(a.id, a.lease_token, "success"), Outcome(b.id, b.lease_token, "gone", retry=False)]
    )
    row = Job.objects.get(pk=parent.id)
    assert row.state == "failed" and row.last_error["type"] == "child_failed"


def test_child_failure_ignored_when_asked(make_queue):
    q, parent, _ = _flow(make_queue, ignore_child_failures=True)
    a, b = job_claim(queue=q, limit=2, lease_ms=60000)
    jobs_record_outcomes(
        outcomes=[
            Outcome(a.id, a.lease_token, "failure", retry=False),
            Outcome(b.id, b.lease_token, "failure", retry=False),
        ]
    )
    assert Job.objects.get(pk=parent.id).state == "waiting"


def test_parent_without_children_stays_delayed(make_queue):
    q = make_queue()
    parent = insert_jobs(
        q, 1, state="delayed", wait_for_children=True, run_at=timezone.now() - timedelta(seconds=1)
    )[0]
    jobs_sweep()
    assert Job.objects.get(pk=parent.id).state == "delayed"
