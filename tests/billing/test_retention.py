import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.services import workspace_create
from alerts.housekeeping import retention_apply
from alerts.tasks import apply_retention
from jobs.models import Execution, Job
from queues.models import Event, QueueMinuteStat
from tests.factories import JobFactory, make_queue

pytestmark = pytest.mark.django_db


def _job(queue, *, state="completed", finished_days_ago=None, parent=None):
    """A job created 100 days ago (finished `finished_days_ago` days ago)."""
    now = timezone.now()
    finished = {} if finished_days_ago is None else {"finished_at": now - timedelta(days=finished_days_ago)}
    return JobFactory(
        queue=queue, state=state, now=now - timedelta(days=100), updated_at=now, parent=parent, **finished
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
    fq, pq, eq = make_queue(free, "q"), make_queue(pro, "q"), make_queue(ent, "q")

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
    queue = make_queue(workspace, "q")
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
    _job(make_queue(workspace, "q"), finished_days_ago=30)
    assert apply_retention.name == "billing.apply_retention"
    assert settings.CELERY_BEAT_SCHEDULE["spindle-retention"]["task"] == apply_retention.name
    assert apply_retention.run() == {
        "jobs": 1,
        "executions": 0,
        "events": 0,
        "deliveries": 0,
        "notifications": 0,
        "rollups": 0,
        "tokens": 0,
    }
    assert Job.objects.count() == 0


# --- webhook deliveries, alert notifications, minute rollups, expired JWTs (issue 9, item 10) ----------


def _delivery(workspace, *, days_ago, status="success"):
    from alerts.models import WebhookDelivery, WebhookSubscription

    sub = WebhookSubscription.objects.filter(
        workspace=workspace
    ).first() or WebhookSubscription.objects.create(
        workspace=workspace, url="http://127.0.0.1/x", events=["*"], secret="whsec_eA=="
    )
    row = WebhookDelivery.objects.create(
        workspace=workspace,
        subscription=sub,
        event_id=f"evt_{uuid.uuid4().hex}",
        event_type="job:failed",
        body="{}",
        status=status,
    )
    # created_at is auto_now_add: age the row afterwards.
    WebhookDelivery.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


def _notification(workspace, *, days_ago, status="success"):
    from alerts.models import Alert, AlertNotification

    alert = Alert.objects.filter(workspace=workspace).first() or Alert.objects.create(
        workspace=workspace, name="a", channel="webhook", target="http://127.0.0.1/x"
    )
    row = AlertNotification.objects.create(workspace=workspace, alert=alert, kind="fired", status=status)
    AlertNotification.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


def _rollup(queue, *, days_ago):
    minute = (timezone.now() - timedelta(days=days_ago)).replace(second=0, microsecond=0)
    return QueueMinuteStat.objects.create(workspace=queue.workspace, queue=queue, minute=minute, completed=1)


def _token(user, *, expires_in_days, blacklisted=False):
    now = timezone.now()
    token = OutstandingToken.objects.create(
        user=user,
        jti=uuid.uuid4().hex,
        token="x",
        created_at=now - timedelta(days=30),
        expires_at=now + timedelta(days=expires_in_days),
    )
    if blacklisted:
        BlacklistedToken.objects.create(token=token)
    return token


def _ids(model):
    return set(model.objects.values_list("pk", flat=True))


def test_retention_prunes_outbound_rows_rollups_and_expired_tokens(plans, django_user_model):
    from alerts.models import AlertNotification, WebhookDelivery

    free, _ = workspace_create(name="free", plan_code="free")  # 7 days
    pro, _ = workspace_create(name="pro", plan_code="pro")  # 30 days
    team, _ = workspace_create(name="team", plan_code="team")  # 90 days
    ent, _ = workspace_create(name="ent", plan_code="enterprise")  # custom (null): kept
    fq, tq, eq = make_queue(free, "q"), make_queue(team, "q"), make_queue(ent, "q")

    kept_deliveries = [
        _delivery(free, days_ago=6),
        _delivery(free, days_ago=20, status="pending"),  # still being retried: never pruned
        _delivery(pro, days_ago=8, status="failed"),
        _delivery(ent, days_ago=400),
    ]
    old_deliveries = [
        _delivery(free, days_ago=8),
        _delivery(free, days_ago=9, status="failed"),
        _delivery(pro, days_ago=31),
    ]
    kept_notes = [
        _notification(free, days_ago=6),
        _notification(free, days_ago=20, status="pending"),
        _notification(pro, days_ago=29, status="failed"),
        _notification(ent, days_ago=400),
    ]
    old_notes = [_notification(free, days_ago=8, status="failed"), _notification(pro, days_ago=31)]
    # Rollups outlive short plans: max(plan retention, ROLLUP_MIN_RETENTION_DAYS = 92), so /v1/usage keeps the
    # current month and the two before it whole.
    kept_rollups = [
        _rollup(fq, days_ago=8),
        _rollup(fq, days_ago=91),
        _rollup(tq, days_ago=91),
        _rollup(eq, days_ago=800),
    ]
    old_rollups = [_rollup(fq, days_ago=93), _rollup(tq, days_ago=100)]

    user = django_user_model.objects.create_user(username="u@example.com", password="x" * 12)
    kept_tokens = [_token(user, expires_in_days=1), _token(user, expires_in_days=1, blacklisted=True)]
    old_tokens = [_token(user, expires_in_days=-1), _token(user, expires_in_days=-2, blacklisted=True)]

    result = retention_apply(batch_rows=2)

    assert _ids(WebhookDelivery) == {r.pk for r in kept_deliveries}
    assert _ids(AlertNotification) == {r.pk for r in kept_notes}
    assert _ids(QueueMinuteStat) == {r.pk for r in kept_rollups}
    assert _ids(OutstandingToken) == {r.pk for r in kept_tokens}
    assert BlacklistedToken.objects.get().token_id == kept_tokens[1].pk
    assert (result.deliveries, result.notifications, result.rollups, result.tokens) == (
        len(old_deliveries),
        len(old_notes),
        len(old_rollups),
        len(old_tokens),
    )


def test_retention_batch_size_setting_bounds_every_delete(plans, settings):
    from alerts.models import WebhookDelivery

    settings.RETENTION_BATCH_ROWS = 10
    workspace, _ = workspace_create(name="free", plan_code="free")
    for _ in range(25):
        _delivery(workspace, days_ago=10)
    with CaptureQueriesContext(connection) as ctx:
        result = apply_retention.run()
    deletes = [
        q["sql"] for q in ctx.captured_queries if q["sql"].startswith('DELETE FROM "alerts_webhookdelivery"')
    ]
    assert result["deliveries"] == 25 and not WebhookDelivery.objects.exists()
    # 10 + 10 + 5: three short transactions, none larger than the setting.
    assert len(deletes) == 3
