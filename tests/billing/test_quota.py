import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import transaction

from accounts.models import Plan
from accounts.services import workspace_create
from billing.models import UsageCounter
from billing.services import (
    current_period,
    plan_check_count,
    plan_check_value,
    quota_consume,
    quota_release,
)
from config.exceptions import PlanLimit, QuotaExceeded
from tests.threads import run_in_threads


def _plan(code: str, jobs_per_month: int | None) -> Plan:
    return Plan.objects.create(
        code=code, name=code.title(), requests_per_minute=None, jobs_per_month=jobs_per_month
    )


@pytest.mark.django_db
def test_quota_counts_and_refuses_without_counting(plans):
    plan = _plan("tiny", 5)
    workspace, _ = workspace_create(name="w", plan_code=plan.code)
    assert quota_consume(workspace=workspace, count=3) == 3
    with pytest.raises(QuotaExceeded) as excinfo:
        quota_consume(workspace=workspace, count=3)
    assert excinfo.value.details == {"used": 3, "limit": 5, "plan": "tiny"}
    assert excinfo.value.status_code == 402 and excinfo.value.code == "QUOTA_EXCEEDED"
    assert quota_consume(workspace=workspace, count=2) == 5
    with pytest.raises(QuotaExceeded):
        quota_consume(workspace=workspace, count=1)
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 5


@pytest.mark.django_db
def test_quota_batch_larger_than_the_limit_is_refused(plans):
    plan = _plan("tiny", 5)
    workspace, _ = workspace_create(name="w", plan_code=plan.code)
    with pytest.raises(QuotaExceeded) as excinfo:
        quota_consume(workspace=workspace, count=6)
    assert excinfo.value.details["used"] == 0
    assert not UsageCounter.objects.filter(workspace=workspace, jobs_enqueued__gt=0).exists()


@pytest.mark.django_db
def test_quota_is_per_month(plans):
    plan = _plan("tiny", 2)
    workspace, _ = workspace_create(name="w", plan_code=plan.code)
    january = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    february = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
    assert quota_consume(workspace=workspace, count=2, now=january) == 2
    with pytest.raises(QuotaExceeded):
        quota_consume(workspace=workspace, count=1, now=january)
    assert quota_consume(workspace=workspace, count=1, now=february) == 1
    assert sorted(UsageCounter.objects.values_list("period", "jobs_enqueued")) == [
        (january.date().replace(day=1), 2),
        (february.date(), 1),
    ]


@pytest.mark.django_db
def test_unlimited_plan_still_counts(plans):
    workspace, _ = workspace_create(name="w", plan_code="enterprise")
    assert quota_consume(workspace=workspace, count=1_000_000) == 1_000_000
    assert quota_consume(workspace=workspace, count=1) == 1_000_001


@pytest.mark.django_db
def test_quota_rolls_back_with_the_enqueue_transaction(workspace):
    with pytest.raises(RuntimeError), transaction.atomic():
        quota_consume(workspace=workspace, count=4)
        raise RuntimeError("the job insert failed")
    assert UsageCounter.objects.filter(workspace=workspace, jobs_enqueued__gt=0).count() == 0


@pytest.mark.django_db
def test_quota_release(workspace):
    quota_consume(workspace=workspace, count=4)
    quota_release(workspace=workspace, count=3)
    assert UsageCounter.objects.get(workspace=workspace, period=current_period()).jobs_enqueued == 1
    quota_release(workspace=workspace, count=5)  # never below zero
    assert UsageCounter.objects.get(workspace=workspace, period=current_period()).jobs_enqueued == 1


def _run_parallel(workspace, *, threads: int, attempts: int, count: int, hold_s: float):
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    accepted: list[int] = []
    refused: list[dict] = []

    def enqueue_loop():
        barrier.wait(timeout=30)
        for _ in range(attempts):
            try:
                # An enqueue transaction: count the quota, then hold the row lock a little (the job
                # INSERTs would happen here) so the others really queue up behind it.
                with transaction.atomic():
                    used = quota_consume(workspace=workspace, count=count)
                    time.sleep(hold_s)
                with lock:
                    accepted.append(used)
            except QuotaExceeded as exc:
                with lock:
                    refused.append(exc.details)

    errors = run_in_threads(enqueue_loop, threads, timeout_s=120)
    assert not errors, errors
    return accepted, refused


@pytest.mark.django_db(transaction=True)
def test_parallel_enqueues_never_pass_the_limit(plans):
    plan = _plan("tiny", 30)
    workspace, _ = workspace_create(name="race", plan_code=plan.code)
    accepted, refused = _run_parallel(workspace, threads=12, attempts=5, count=1, hold_s=0.005)
    assert len(accepted) == 30
    assert len(refused) == 12 * 5 - 30
    assert sorted(accepted) == list(range(1, 31))  # each success saw a distinct count, none past the limit
    assert all(d == {"used": 30, "limit": 30, "plan": "tiny"} for d in refused)
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 30


@pytest.mark.django_db(transaction=True)
def test_parallel_batches_never_pass_the_limit(plans):
    plan = _plan("tiny", 10)
    workspace, _ = workspace_create(name="race", plan_code=plan.code)
    accepted, refused = _run_parallel(workspace, threads=10, attempts=1, count=4, hold_s=0.01)
    # 4 + 4 fit; a third batch of 4 would reach 12 > 10, so every other one is refused whole.
    assert sorted(accepted) == [4, 8]
    assert len(refused) == 8
    assert all(d["used"] <= 10 and d["limit"] == 10 for d in refused)
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 8


@pytest.mark.django_db
@pytest.mark.parametrize(("resource", "cap"), [("queues", 5), ("schedules", 5), ("alerts", 1)])
def test_plan_check_count(workspace, resource, cap):
    plan_check_count(workspace=workspace, resource=resource, current=cap - 1)
    with pytest.raises(PlanLimit) as excinfo:
        plan_check_count(workspace=workspace, resource=resource, current=cap)
    assert excinfo.value.status_code == 402 and excinfo.value.code == "PLAN_LIMIT"
    assert excinfo.value.details["limit"] == cap and excinfo.value.details["plan"] == "free"
    with pytest.raises(PlanLimit):
        plan_check_count(workspace=workspace, resource=resource, current=0, adding=cap + 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "cap"), [("max_attempts", 4), ("timeout_ms", 30_000), ("max_timeout_ms", 30_000)]
)
def test_plan_check_value(workspace, field, cap):
    plan_check_value(workspace=workspace, field=field, value=cap)
    plan_check_value(workspace=workspace, field=field, value=None)
    with pytest.raises(PlanLimit) as excinfo:
        plan_check_value(workspace=workspace, field=field, value=cap + 1)
    assert excinfo.value.details == {"limit": cap, "plan": "free", "field": field}


@pytest.mark.django_db
def test_enterprise_has_no_caps(plans):
    workspace, _ = workspace_create(name="big", plan_code="enterprise")
    plan_check_count(workspace=workspace, resource="queues", current=10**6)
    plan_check_value(workspace=workspace, field="max_attempts", value=10**6)


@pytest.mark.django_db
def test_plan_caps_follow_the_seeded_table(plans):
    expected = {
        "free": (60, 10_000, 7, 5, 5, 1, 4, 30_000),
        "pro": (300, 100_000, 30, 50, 100, 10, 10, 120_000),
        "team": (1_000, 1_000_000, 90, 500, 1_000, 50, 20, 300_000),
        "enterprise": (None,) * 8,
    }
    for code, caps in expected.items():
        p = plans[code]
        assert (
            p.requests_per_minute,
            p.jobs_per_month,
            p.retention_days,
            p.max_queues,
            p.max_schedules,
            p.max_alerts,
            p.max_attempts,
            p.max_timeout_ms,
        ) == caps
