"""Plans, subscriptions and the per-workspace monthly usage counter."""

from __future__ import annotations

from django.db import models


class Plan(models.Model):
    """A plan's caps. A null cap means unlimited (enterprise's "custom" values are set per deal by staff)."""

    code = models.SlugField(primary_key=True, max_length=32)
    name = models.CharField(max_length=64)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    jobs_per_month = models.PositiveIntegerField(null=True, blank=True)
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    max_queues = models.PositiveIntegerField(null=True, blank=True)
    max_schedules = models.PositiveIntegerField(null=True, blank=True)
    max_alerts = models.PositiveIntegerField(null=True, blank=True)
    max_webhooks = models.PositiveIntegerField(null=True, blank=True)
    max_attempts = models.PositiveIntegerField(null=True, blank=True)
    max_timeout_ms = models.PositiveIntegerField(null=True, blank=True)
    stripe_price_id = models.CharField(max_length=128, blank=True, default="")
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order"]

    def __str__(self) -> str:
        return self.name


class UsageCounter(models.Model):
    """Jobs enqueued per workspace per calendar month (UTC); the quota check is a conditional UPDATE on it."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="usage_counters"
    )
    period = models.DateField(help_text="First day of the month (UTC).")
    jobs_enqueued = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "period"], name="billing_usage_workspace_period_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id} {self.period:%Y-%m}: {self.jobs_enqueued}"


class StripeEvent(models.Model):
    """A Stripe webhook event already handled: a repeated delivery of the same id changes nothing."""

    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=128)
    workspace_id = models.CharField(max_length=40, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="billing_stripe_event_id_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"
