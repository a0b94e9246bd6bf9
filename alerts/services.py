"""Writes for alerts and webhook subscriptions. Fan-out lives in alerts/fanout.py, sending in alerts/outbound.py."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Workspace
from billing.services import plan_slot_take
from config.exceptions import ValidationFailed
from queues.models import Queue
from queues.services import signing_secret_new
from schedules.models import Schedule

from .models import Alert, AlertNotification, Channel, NotificationKind, WebhookSubscription
from .serializers import alert_target_check

logger = logging.getLogger(__name__)

SEND_NOTIFICATION_TASK = "alerts.send_notification"

ALERT_DEFAULTS: dict[str, Any] = {
    "queue": None,
    "schedule": None,
    "consecutive_failures_threshold": 1,
    "cooldown_minutes": 60,
    "enabled": True,
}


def _check_scope(*, workspace: Workspace, queue: str | None, schedule: str | None) -> None:
    errors: dict[str, list[str]] = {}
    if queue is not None and not Queue.objects.filter(workspace=workspace, name=queue).exists():
        errors["queue"] = [f"Unknown queue '{queue}'."]
    if schedule is not None and not Schedule.objects.filter(workspace=workspace, name=schedule).exists():
        errors["schedule"] = [f"Unknown schedule '{schedule}'."]
    if errors:
        raise ValidationFailed(details=errors)


def _apply_alert_fields(alert: Alert, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key == "queue":
            alert.queue_name = value
        elif key == "schedule":
            alert.schedule_name = value
        else:
            setattr(alert, key, value)


def _insert_within_plan(row: Model, *, workspace: Workspace, resource: str) -> None:
    """Insert one more of the plan-capped `resource` (alerts, webhooks): the cap check locks the workspace row in
    the inserting transaction, so two parallel creates cannot both take the plan's last slot."""
    with transaction.atomic():
        plan_slot_take(workspace=workspace, resource=resource, model=type(row))
        row.save(force_insert=True)


def alert_create(*, workspace: Workspace, data: dict[str, Any]) -> tuple[Alert, str | None]:
    """Create an alert from validated input; returns it and its secret (webhook channel only, shown once)."""
    data = {**ALERT_DEFAULTS, **data}
    target = alert_target_check(channel=data["channel"], target=data["target"])
    _check_scope(workspace=workspace, queue=data["queue"], schedule=data["schedule"])
    secret = signing_secret_new() if data["channel"] == Channel.WEBHOOK else None
    alert = Alert(workspace=workspace, secret=secret or "")
    _apply_alert_fields(alert, {**data, "target": target})
    _insert_within_plan(alert, workspace=workspace, resource="alerts")
    return alert, secret


def alert_update(
    *, workspace: Workspace, alert: Alert, data: dict[str, Any], replace: bool
) -> tuple[Alert, str | None]:
    """PUT (replace=True: omitted fields go back to their defaults) or PATCH. Returns a new secret if one was made."""
    if replace:
        data = {**ALERT_DEFAULTS, **data}
    channel = data.get("channel", alert.channel)
    target = data.get("target", alert.target)
    if "channel" in data or "target" in data:
        data["target"] = alert_target_check(channel=channel, target=target)
    queue = data.get("queue", alert.queue_name)
    schedule = data.get("schedule", alert.schedule_name)
    if "queue" in data or "schedule" in data:
        _check_scope(workspace=workspace, queue=queue, schedule=schedule)
    secret = None
    if channel == Channel.WEBHOOK and not alert.secret:
        secret = signing_secret_new()
        alert.secret = secret
    elif channel != Channel.WEBHOOK:
        alert.secret = ""
    scope_changed = any(
        k in data and data[k] != v
        for k, v in (
            ("queue", alert.queue_name),
            ("schedule", alert.schedule_name),
            ("consecutive_failures_threshold", alert.consecutive_failures_threshold),
        )
    )
    _apply_alert_fields(alert, data)
    if scope_changed or data.get("enabled") is False:
        # A different scope is a different incident: the next evaluation starts from "not firing".
        alert.firing = False
    alert.save()
    return alert, secret


def alert_delete(*, workspace: Workspace, alert: Alert) -> None:
    Alert.objects.filter(workspace=workspace, pk=alert.pk).delete()


def alert_test(*, workspace: Workspace, alert: Alert) -> AlertNotification:
    """Queue a test message to the alert's channel; a Celery task sends it (one attempt, never retried).

    Not sent on the request thread: a target that never answers would hold a web thread for the whole send
    timeout (issue 9). The notification is due at once, so the outbound sweep sends it too if the task is lost.
    """
    notification = AlertNotification.objects.create(
        workspace=workspace,
        alert=alert,
        kind=NotificationKind.TEST,
        data={"message": "This is a test notification from Spindle."},
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(lambda: _send_soon(notification.pk))
    return notification


def _send_soon(notification_id: str) -> None:
    try:
        # By name, not import: tasks call services, never the other way round.
        current_app.send_task(SEND_NOTIFICATION_TASK, args=[notification_id])
    except Exception:  # noqa: BLE001 - broker down: the due sweep sends it once the beat runs again
        logger.warning("could not queue alert test message %s", notification_id, exc_info=True)


def webhook_create(*, workspace: Workspace, data: dict[str, Any]) -> tuple[WebhookSubscription, str]:
    """Create a subscription; returns it and its signing secret (shown once)."""
    secret = signing_secret_new()
    sub = WebhookSubscription(
        workspace=workspace,
        url=data["url"],
        events=data["events"],
        enabled=data.get("enabled", True),
        description=data.get("description", ""),
        secret=secret,
    )
    # The cap also bounds the fan-out work one workspace's events cost (issue 9).
    _insert_within_plan(sub, workspace=workspace, resource="webhooks")
    return sub, secret


def webhook_update(
    *, workspace: Workspace, subscription: WebhookSubscription, data: dict[str, Any]
) -> WebhookSubscription:
    for key in ("url", "events", "enabled", "description"):
        if key in data:
            setattr(subscription, key, data[key])
    subscription.save()
    return subscription


def webhook_delete(*, workspace: Workspace, subscription: WebhookSubscription) -> None:
    """Delete the subscription; its pending deliveries go with it (CASCADE), so nothing more is sent."""
    WebhookSubscription.objects.filter(workspace=workspace, pk=subscription.pk).delete()
