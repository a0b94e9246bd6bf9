from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import workspace_create
from billing.services import retention_apply
from billing.tasks import apply_retention
from jobs.models import Event, Execution, Job
from queues.models import Queue

pytestmark = pytest.mark.django_db


def _queue(workspace, name="q"):
    return Queue.objects.create(workspace=workspace, name=name, signing_secret="s")


def _job(queue, *, state="completed", finished_days_ago=None, parent=None):
    now = timezone.now()
    finished = now - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
    return Job.objects.create(
        workspace=queue.workspace,
        queue=queue,
        state=state,
        run_at=now - timedelta(days=100),
        created_at=now - timedelta(days=100),
        updated_at=now,
        finished_at=finished,
        parent=parent,
    )


def _execution(job, *, days_ago, status="success"):
    return Execution.objects.create(
        workspace=job.workspace,
        job=job,
        queue=job.queue,
        attempt=1,
        status=status,
        started_at=timezone.now() - timedelta(days=days_ago),
    )


def _event(workspace, *, days_ago):
    return Event.objects.create(
        workspace=workspace, type="job:completed", created_at=timezone.now() - timedelta(days=days_ago)
    )


def test_retention_deletes_only_what_the_plan_no_longer_keeps(plans):
    free, _ = workspace_create(name="free", plan_code="free")  # 7 days
    pro, _ = workspace_create(name="pro", plan_code="pro")  # 30 days
    ent, _ = workspace_create(name="ent", plan_code="enterprise")  # custom: kept
    fq, pq, eq = _queue(free), _queue(pro), _queue(ent)

    old_free = _job(fq, finished_days_ago=8)
    old_free_exe = _execution(old_free, days_ago=8)
    old_failed = _job(fq, state="failed", finished_days_ago=10)
    recent_free = _job(fq, finished_days_ago=6)
    recent_exe = _execution(recent_free, days_ago=6)
    waiting = _job(fq, state="waiting")  # never finished: kept whatever its age
    old_exe_of_live_job = _execution(waiting, days_ago=20, status="failed")
    running_exe = _execution(waiting, days_ago=20, status="running")
    child = _job(fq, state="waiting", parent=old_free)
    pro_job = _job(pq, finished_days_ago=8)
    old_pro = _job(pq, finished_days_ago=31)
    ent_job = _job(eq, finished_days_ago=400)
    free_events = [_event(free, days_ago=8), _event(free, days_ago=1)]
    pro_events = [_event(pro, days_ago=8), _event(pro, days_ago=31)]
    ent_event = _event(ent, days_ago=400)

    result = retention_apply(batch_rows=2)

    assert set(Job.objects.values_list("id", flat=True)) == {
        recent_free.id,
        waiting.id,
        child.id,
        pro_job.id,
        ent_job.id,
    }
    assert not Job.objects.filter(id__in=[old_free.id, old_failed.id, old_pro.id]).exists()
    assert set(Execution.objects.values_list("id", flat=True)) == {recent_exe.id, running_exe.id}
    assert not Execution.objects.filter(id__in=[old_free_exe.id, old_exe_of_live_job.id]).exists()
    assert set(Event.objects.values_list("id", flat=True)) == {
        free_events[1].id,
        pro_events[0].id,
        ent_event.id,
    }
    child.refresh_from_db()
    assert child.parent_id is None
    assert (result.jobs, result.executions, result.events) == (3, 2, 2)


def test_retention_works_in_bounded_batches(plans):
    workspace, _ = workspace_create(name="free", plan_code="free")
    queue = _queue(workspace)
    for _ in range(7):
        _job(queue, finished_days_ago=9)
    for _ in range(5):
        _event(workspace, days_ago=9)
    result = retention_apply(batch_rows=3)
    assert (result.jobs, result.events) == (7, 5)
    assert Job.objects.count() == 0 and Event.objects.count() == 0
    # A second run finds nothing (idempotent).
    assert retention_apply(batch_rows=3).jobs == 0


def test_retention_task_is_registered_under_its_beat_name(plans, settings):
    workspace, _ = workspace_create(name="free", plan_code="free")
    _job(_queue(workspace), finished_days_ago=30)
    assert apply_retention.name == "billing.apply_retention"
    assert settings.CELERY_BEAT_SCHEDULE["spindle-retention"]["task"] == apply_retention.name
    assert apply_retention.run() == {"jobs": 1, "executions": 0, "events": 0}
    assert Job.objects.count() == 0
