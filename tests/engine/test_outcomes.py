"""Outcomes: fencing, retries with backoff, deferrals, 410, dead letter, rollups (invariants 3, 4, 5, 6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services.engine import Outcome, compute_backoff_ms, job_claim, jobs_record_outcomes
from queues.models import Event, QueueMinuteStat
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


def claim_one(q):
    return job_claim(queue=q, limit=1, lease_ms=60000)[0]


def test_success_completes_with_result_and_execution(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)

    lost = jobs_record_outcomes(
        outcomes=[
            Outcome(
                job.id,
                job.lease_token,
                "success",
                result={"ok": 1},
                http_status=200,
                response_body="x" * 70000,
                duration_ms=12,
            )
        ]
    )

    assert lost == []
    row = Job.objects.get(pk=job.id)
    assert (row.state, row.result, row.lease_token, row.attempts) == ("completed", {"ok": 1}, None, 1)
    assert row.finished_at is not None
    exe = Execution.objects.get(pk=job.execution_id)
    assert (exe.status, exe.http_status, exe.duration_ms) == ("success", 200, 12)
    assert len(exe.response_body) == 64 * 1024
    assert Event.objects.filter(job_id=job.id, type="job:completed").count() == 1
    stat = QueueMinuteStat.objects.get(queue=q)
    assert (stat.completed, stat.failed, stat.duration_count, stat.duration_sum_ms) == (1, 0, 1, 12)
    assert stat.duration_hist == {"25": 1}


def test_stale_token_changes_nothing(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)
    before = Job.objects.get(pk=job.id)

    lost = jobs_record_outcomes(outcomes=[Outcome(job.id, "0" * 32, "success", result=1)])

    assert lost == [job.id]
    after = Job.objects.get(pk=job.id)
    assert (after.state, after.lease_token, after.result, after.updated_at) == (
        "active",
        before.lease_token,
        None,
        before.updated_at,
    )
    assert Execution.objects.get(pk=job.execution_id).status == "running"
    assert not Event.objects.filter(type="job:completed").exists()
    assert not QueueMinuteStat.objects.exists()


def test_second_outcome_for_same_lease_is_fenced(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)
    assert jobs_record_outcomes(outcomes=[Outcome(job.id, job.lease_token, "success")]) == []
    assert jobs_record_outcomes(outcomes=[Outcome(job.id, job.lease_token, "failure")]) == [job.id]
    assert Job.objects.get(pk=job.id).state == "completed"


def test_workspace_scope_fences_other_workspaces(make_queue, other_workspace_and_key):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)
    lost = jobs_record_outcomes(
        outcomes=[Outcome(job.id, job.lease_token, "success")], workspace_id=other_workspace_and_key[0].id
    )
    assert lost == [job.id]
    assert Job.objects.get(pk=job.id).state == "active"


@override_settings(SPINDLE_BACKOFF_SCALE=1.0)
def test_failure_retries_with_backoff_then_dead_letters(make_queue):
    q = make_queue(
        retry_policy={"max_attempts": 2, "backoff": "fixed", "initial_delay_ms": 5000, "jitter": False}
    )
    insert_jobs(q, 1, max_attempts=2)
    job = claim_one(q)
    t0 = timezone.now()
    jobs_record_outcomes(
        outcomes=[
            Outcome(
                job.id,
                job.lease_token,
                "failure",
                http_status=500,
                error={"message": "boom", "type": "http_error"},
            )
        ]
    )
    row = Job.objects.get(pk=job.id)
    assert row.state == "delayed" and row.attempts == 1
    assert row.last_error == {"message": "boom", "type": "http_error", "http_status": 500}
    assert t0 + timedelta(seconds=4) < row.run_at < t0 + timedelta(seconds=6)
    assert Execution.objects.get(pk=job.execution_id).status == "failed"
    assert Event.objects.filter(job_id=job.id, type="job:delayed").count() == 1

    Job.objects.filter(pk=job.id).update(state="waiting")
    job2 = claim_one(q)
    assert job2.attempts == 2
    jobs_record_outcomes(outcomes=[Outcome(job2.id, job2.lease_token, "failure", error={"message": "again"})])
    row = Job.objects.get(pk=job.id)
    assert row.state == "failed" and row.finished_at is not None
    assert Execution.objects.get(pk=job2.execution_id).status == "dead_letter"
    assert {e.type for e in Event.objects.filter(job_id=job.id)} >= {"job:failed", "job:dead"}
    assert Execution.objects.filter(job_id=job.id).count() == 2
    stat = QueueMinuteStat.objects.get(queue=q)
    assert stat.failed == 2


def test_retry_false_dead_letters_at_once(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)
    jobs_record_outcomes(
        outcomes=[Outcome(job.id, job.lease_token, "failure", retry=False, error={"message": "x"})]
    )
    assert Job.objects.get(pk=job.id).state == "failed"
    assert Execution.objects.get(pk=job.execution_id).status == "dead_letter"


def test_gone_fails_at_once(make_queue):
    q = make_queue()
    insert_jobs(q, 1, max_attempts=5)
    job = claim_one(q)
    jobs_record_outcomes(outcomes=[Outcome(job.id, job.lease_token, "gone", http_status=410, retry=False)])
    row = Job.objects.get(pk=job.id)
    assert (row.state, row.attempts) == ("failed", 1)
    assert Execution.objects.get(pk=job.execution_id).status == "dead_letter"


def test_timeout_retries_and_is_recorded_as_timeout(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)
    jobs_record_outcomes(
        outcomes=[Outcome(job.id, job.lease_token, "timeout", error={"message": "slow", "type": "timeout"})]
    )
    assert Job.objects.get(pk=job.id).state == "delayed"
    assert Execution.objects.get(pk=job.execution_id).status == "timeout"
    assert QueueMinuteStat.objects.get(queue=q).timeout == 1


def test_deferral_gives_the_attempt_back(make_queue):
    q = make_queue()
    insert_jobs(q, 1, max_attempts=1)
    job = claim_one(q)
    t0 = timezone.now()
    jobs_record_outcomes(
        outcomes=[Outcome(job.id, job.lease_token, "deferred", http_status=429, retry_after_s=30)]
    )
    row = Job.objects.get(pk=job.id)
    assert (row.state, row.attempts, row.deferrals) == ("delayed", 0, 1)
    assert t0 + timedelta(seconds=29) < row.run_at < t0 + timedelta(seconds=32)
    assert Execution.objects.get(pk=job.execution_id).status == "deferred"


def test_eleventh_deferral_counts_as_failed_attempt(make_queue):
    q = make_queue()
    insert_jobs(q, 1, max_attempts=1, deferrals=10)
    job = claim_one(q)
    jobs_record_outcomes(
        outcomes=[Outcome(job.id, job.lease_token, "deferred", http_status=503, retry_after_s=1)]
    )
    row = Job.objects.get(pk=job.id)
    assert (row.state, row.attempts, row.deferrals) == ("failed", 1, 11)
    assert Execution.objects.get(pk=job.execution_id).status == "dead_letter"


def test_batch_outcomes_mix_in_one_call(make_queue):
    q = make_queue()
    insert_jobs(q, 3, max_attempts=3)
    a, b, c = job_claim(queue=q, limit=3, lease_ms=60000)
    lost = jobs_record_outcomes(
        outcomes=[
            Outcome(a.id, a.lease_token, "success"),
            Outcome(b.id, b.lease_token, "failure"),
            Outcome(c.id, "stale", "success"),
        ]
    )
    assert lost == [c.id]
    assert dict(Job.objects.values_list("id", "state")) == {
        a.id: "completed",
        b.id: "delayed",
        c.id: "active",
    }


def test_cancel_requested_job_ends_cancelled(make_queue):
    q = make_queue()
    insert_jobs(q, 1)
    job = claim_one(q)
    Job.objects.filter(pk=job.id).update(cancel_requested=True)
    jobs_record_outcomes(outcomes=[Outcome(job.id, job.lease_token, "failure")])
    assert Job.objects.get(pk=job.id).state == "cancelled"


@override_settings(SPINDLE_BACKOFF_SCALE=1.0)
def test_backoff_math():
    exp = {
        "backoff": "exponential",
        "initial_delay_ms": 1000,
        "multiplier": 2,
        "max_delay_ms": 10000,
        "jitter": False,
    }
    assert [compute_backoff_ms(exp, n) for n in (1, 2, 3, 4, 5, 50)] == [1000, 2000, 4000, 8000, 10000, 10000]
    fixed = {**exp, "backoff": "fixed"}
    assert [compute_backoff_ms(fixed, n) for n in (1, 5)] == [1000, 1000]
    three = {**exp, "multiplier": 3}
    assert compute_backoff_ms(three, 3) == 9000
    for _ in range(50):
        assert 2000 <= compute_backoff_ms({**exp, "jitter": True}, 3) <= 4000
        assert 0 <= compute_backoff_ms({**exp, "jitter": "full"}, 3) <= 4000
    assert compute_backoff_ms(exp, 10**6) == 10000


@override_settings(SPINDLE_BACKOFF_SCALE=0.01)
def test_backoff_is_scaled_for_tests():
    assert compute_backoff_ms({"backoff": "fixed", "initial_delay_ms": 1000, "jitter": False}, 1) == 10
