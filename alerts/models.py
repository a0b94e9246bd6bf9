"""Alerts (failure notifications), webhook subscriptions (event fan-out) and the rows that deliver them.

Both read the outbox (jobs.Event) through one fan-out cursor; every outbound message is a row with
`next_attempt_at`, sent by a due-sweep task (never a Celery countdown), so a restart loses nothing.
"""

from __future__ import annotations

from django.db import models

from config.columns import owning_workspace, prefixed_id, timestamps, workspace_list_index
from config.ids import IdMaker

_alert_id = IdMaker("alr")
_webhook_id = IdMaker("wh")
_delivery_id = IdMaker("whd")
_notification_id = IdMaker("ntf")


class OutboundStatus(models.TextChoices):
    PENDING = "pending", "Not sent yet, or waiting for its next retry (next_attempt_at)"
    SUCCESS = "success", "The target answered 2xx (terminal)"
    FAILED = "failed", "Every attempt failed (terminal)"


class Channel(models.TextChoices):
    EMAIL = "email", "An email through Django's mail settings"
    SLACK = "slack", "A Slack incoming-webhook URL"
    WEBHOOK = "webhook", "A signed POST to a URL"


class Alert(models.Model):
    """Notifies when consecutive failed executions in its scope (queue, schedule or workspace) reach a threshold."""

    id = prefixed_id(_alert_id)
    workspace = owning_workspace()
    name = models.CharField(max_length=128)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=2048)
    # Scope by name, as the API addresses them; null = any (both null: the whole workspace).
    queue_name = models.CharField(max_length=64, null=True, blank=True)
    schedule_name = models.CharField(max_length=64, null=True, blank=True)
    consecutive_failures_threshold = models.PositiveIntegerField(default=1)
    cooldown_minutes = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, blank=True, default="")
    # Evaluation state: `firing` is set when the alert fired and cleared (with a recovered notice) on a success.
    firing = models.BooleanField(default=False)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at, updated_at = timestamps()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(channel__in=Channel.values), name="alerts_alert_channel_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(consecutive_failures_threshold__gte=1),
                name="alerts_alert_threshold_positive",
            ),
        ]
        indexes = [
            # GET /v1/alerts newest first; fan-out: the enabled alerts of the workspaces in a batch.
            workspace_list_index("alerts_alert_ws"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class WebhookSubscription(models.Model):
    """Receives every outbox event of its workspace whose type is in `events` (or all, with `["*"]`)."""

    id = prefixed_id(_webhook_id)
    workspace = owning_workspace()
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True, default="")
    secret = models.CharField(max_length=100)
    failure_count = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at, updated_at = timestamps()

    class Meta:
        indexes = [
            # GET /v1/webhooks newest first; fan-out: the enabled subscriptions of a batch's workspaces.
            workspace_list_index("alerts_webhook_ws"),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class WebhookDelivery(models.Model):
    """One event to one subscription; retried in place (attempts, next_attempt_at) until success or failed."""

    id = prefixed_id(_delivery_id)
    workspace = owning_workspace()
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=32)
    # The exact JSON sent (and signed) on every attempt, kept so retention may delete the event meanwhile.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=OutboundStatus.choices, default=OutboundStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"  # the admin would say "Webhook deliverys"
        constraints = [
            # A retried or doubled fan-out run creates nothing twice (ON CONFLICT DO NOTHING).
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="alerts_delivery_sub_event_uniq"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=OutboundStatus.values), name="alerts_delivery_status_valid"
            ),
        ]
        indexes = [
            # Due sweep: pending deliveries by next_attempt_at (SKIP LOCKED batches).
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(status="pending"), name="alerts_delivery_due"
            ),
            # GET /v1/webhooks/{id}/deliveries newest first.
            models.Index(fields=["subscription", "-id"], name="alerts_delivery_sub"),
            # Retention (alerts.housekeeping.retention_apply) and /metrics' failed-today count, by age.
            models.Index(fields=["created_at"], name="alerts_delivery_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.event_type} -> {self.subscription_id}"


class NotificationKind(models.TextChoices):
    FIRED = "fired", "The failure threshold was reached"
    RECOVERED = "recovered", "A success after the alert had fired"
    TEST = "test", "POST /v1/alerts/{id}/test"


class AlertNotification(models.Model):
    """One message of an alert to its channel; sent and retried like webhook deliveries."""

    id = prefixed_id(_notification_id)
    workspace = owning_workspace()
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    # What the message says (rendered per channel at send time).
    data = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=OutboundStatus.choices, default=OutboundStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=OutboundStatus.values), name="alerts_notification_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=NotificationKind.values), name="alerts_notification_kind_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="alerts_notification_due",
            ),
            models.Index(fields=["alert", "-id"], name="alerts_notification_alert"),
            # Retention (alerts.housekeeping.retention_apply) and /metrics' failed-today count, by age.
            models.Index(fields=["created_at"], name="alerts_notification_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.kind} of {self.alert_id}"


class FanoutCursor(models.Model):
    """The outbox read position: every event with id <= `position` has been fanned out.

    One row (name "events"). The fan-out run locks it FOR UPDATE SKIP LOCKED, so a second beat process skips
    the run instead of doing the same work.
    """

    name = models.CharField(primary_key=True, max_length=32)
    position = models.CharField(max_length=40, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"


class FanoutMark(models.Model):
    """Events above the cursor that were already fanned out.

    The cursor trails real time by a safety lag because event ids are taken before their transaction commits:
    an event with a smaller id can become visible after a bigger one. Events inside the lag window are
    re-read on every run and these marks say which of them are done; marks below the cursor are pruned.
    """

    event_id = models.CharField(primary_key=True, max_length=40)

    def __str__(self) -> str:
        return self.event_id
