"""The per-workspace monthly usage counter and the Stripe events already handled.

Plans live in accounts.models, below billing, so accounts reads them without importing billing.
"""

from __future__ import annotations

from django.db import models


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
