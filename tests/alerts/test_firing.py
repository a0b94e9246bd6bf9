"""Alert evaluation through the real fan-out: executions and outbox events in, notifications out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from alerts.fanout import events_fanout
from alerts.models import Alert, AlertNotification
from alerts.outbound import notifications_send
from tests.factories import ScheduleFactory, make_queue

from .conftest import finish_attempt

pytestmark = pytest.mark.django_db


def _alert(workspace, **fields) -> Alert:
    fields = {"name": "ops", "channel": "email", "target": "ops@example.com", **fields}
    return Alert.objects.create(workspace=workspace, **fields)


def _fanout() -> None:
    events_fanout(lag_s=0)


def _kinds(alert: Alert) -> list[str]:
    return list(AlertNotification.objects.filter(alert=alert).order_by("id").values_list("kind", flat=True))


def test_fires_at_threshold_and_sends_email(pro_workspace, private_targets):
    queue = make_queue(pro_workspace)
    alert = _alert(pro_workspace, consecutive_failures_threshold=3)
    for _ in range(2):
        finish_attempt(queue, "failed")
    _fanout()
    assert _kinds(alert) == []
    finish_attempt(queue, "dead_letter")
    _fanout()
    assert _kinds(alert) == ["fired"]
    alert.refresh_from_db()
    assert alert.firing and alert.last_fired_at is not None
    note = AlertNotification.objects.get(alert=alert)
    assert note.data["consecutive_failures"] == 3 and note.data["last_execution"]["status"] == "dead_letter"

    assert notifications_send() == 1
    assert len(mail.outbox) == 1
    assert "3 consecutive failed executions" in mail.outbox[0].body
    note.refresh_from_db()
    assert note.status == "success" and note.attempts == 1
    # Nothing more is due.
    assert notifications_send() == 0


def test_success_in_between_resets_the_count(pro_workspace, private_targets):
    queue = make_queue(pro_workspace)
    alert = _alert(pro_workspace, consecutive_failures_threshold=2)
    finish_attempt(queue, "failed")
    finish_attempt(queue, "success")
    finish_attempt(queue, "timeout")
    _fanout()
    assert _kinds(alert) == []
    finish_attempt(queue, "failed")
    _fanout()
    assert _kinds(alert) == ["fired"]


def test_cooldown_then_fires_again_then_recovers(pro_workspace, private_targets):
    queue = make_queue(pro_workspace)
    alert = _alert(pro_workspace, cooldown_minutes=30)
    finish_attempt(queue, "failed")
    _fanout()
    assert _kinds(alert) == ["fired"]

    # Failures go on inside the cooldown: quiet.
    finish_attempt(queue, "failed")
    _fanout()
    assert _kinds(alert) == ["fired"]

    # The cooldown has passed and a new failure comes in: fires again.
    alert.refresh_from_db()
    Alert.objects.filter(pk=alert.pk).update(last_fired_at=alert.last_fired_at - timedelta(minutes=31))
    _fanout()  # no new event: nothing is evaluated
    assert _kinds(alert) == ["fired"]
    finish_attempt(queue, "failed")
    _fanout()
    assert _kinds(alert) == ["fired", "fired"]

    # A success: one recovered notice, then quiet.
    finish_attempt(queue, "success")
    _fanout()
    assert _kinds(alert) == ["fired", "fired", "recovered"]
    alert.refresh_from_db()
    assert alert.firing is False
    finish_attempt(queue, "success")
    _fanout()
    assert _kinds(alert) == ["fired", "fired", "recovered"]

    notifications_send()
    assert [m.subject.split(": ")[-1] for m in mail.outbox] == ["failures in the workspace"] * 2 + [
        "recovered"
    ]


def test_success_without_fired_alert_sends_nothing(pro_workspace, private_targets):
    queue = make_queue(pro_workspace)
    alert = _alert(pro_workspace, consecutive_failures_threshold=5)
    finish_attempt(queue, "failed")
    finish_attempt(queue, "success")
    _fanout()
    assert _kinds(alert) == []


def test_queue_scope_ignores_other_queues(pro_workspace, private_targets):
    emails = make_queue(pro_workspace, "emails")
    other = make_queue(pro_workspace, "other")
    alert = _alert(pro_workspace, queue_name="emails", consecutive_failures_threshold=2)
    finish_attempt(other, "failed")
    finish_attempt(other, "failed")
    _fanout()
    assert _kinds(alert) == []
    finish_attempt(emails, "failed")
    finish_attempt(other, "success")  # a success elsewhere does not reset this queue's count
    finish_attempt(emails, "failed")
    _fanout()
    assert _kinds(alert) == ["fired"]


def test_schedule_scope_counts_only_its_runs(pro_workspace, private_targets):
    queue = make_queue(pro_workspace)
    nightly = ScheduleFactory(queue=queue, name="nightly")
    hourly = ScheduleFactory(queue=queue, name="hourly")
    alert = _alert(pro_workspace, schedule_name="nightly", consecutive_failures_threshold=2)
    finish_attempt(queue, "failed", schedule_id=hourly.id)
    finish_attempt(queue, "failed")
    finish_attempt(queue, "failed", schedule_id=nightly.id)
    _fanout()
    assert _kinds(alert) == []
    finish_attempt(queue, "quota_exceeded", schedule_id=nightly.id, event="schedule:fired")
    _fanout()
    assert _kinds(alert) == ["fired"]


def test_disabled_alert_and_other_workspace_stay_quiet(pro_workspace, workspace, private_targets):
    queue = make_queue(pro_workspace)
    disabled = _alert(pro_workspace, enabled=False)
    elsewhere = _alert(workspace)
    finish_attempt(queue, "failed")
    _fanout()
    assert _kinds(disabled) == [] and _kinds(elsewhere) == []


def test_history_before_the_alert_is_not_counted(pro_workspace, private_targets):
    queue = make_queue(pro_workspace)
    finish_attempt(queue, "failed")
    finish_attempt(queue, "failed")
    alert = _alert(pro_workspace, consecutive_failures_threshold=2)
    Alert.objects.filter(pk=alert.pk).update(created_at=alert.created_at + timedelta(milliseconds=5))
    finish_attempt(queue, "success", event="job:active")
    _fanout()
    assert _kinds(alert) == []


def test_slack_notification_failure_is_retried_then_failed(pro_workspace, private_targets, receiver):
    receiver.statuses = [500]
    queue = make_queue(pro_workspace)
    alert = _alert(pro_workspace, channel="slack", target=receiver.url)
    finish_attempt(queue, "failed")
    _fanout()
    note = AlertNotification.objects.get(alert=alert)
    for attempt in range(1, 7):
        AlertNotification.objects.filter(pk=note.pk).update(next_attempt_at=note.created_at)
        notifications_send()
        note.refresh_from_db()
        assert note.attempts == attempt
    assert note.status == "failed" and note.next_attempt_at is None
    assert len(receiver.requests) == 6
