"""Tenancy: plans, workspaces and their API keys."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models

from config.columns import prefixed_id, timestamps
from config.ids import IdMaker

_workspace_id = IdMaker("ws")
_key_id = IdMaker("key")


class Plan(models.Model):
    """A plan's caps. A null cap means unlimited (enterprise's "custom" values are set per deal by staff).

    Here, below billing, so that every app (accounts included) reads a workspace's caps without importing billing;
    billing sells the plans. The table keeps its first name (the model moved from billing in migration 0004).
    """

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
        db_table = "billing_plan"
        ordering = ["sort_order"]

    def __str__(self) -> str:
        return self.name


class Workspace(models.Model):
    """The tenant: every object belongs to exactly one workspace."""

    id = prefixed_id(_workspace_id)
    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="workspaces", default="free")
    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="workspace"
    )
    is_anonymous = models.BooleanField(default=False)
    stripe_customer_id = models.CharField(max_length=64, blank=True, default="")
    stripe_subscription_id = models.CharField(max_length=64, blank=True, default="")
    subscription_status = models.CharField(max_length=32, blank=True, default="")
    # Stripe's `created` of the last subscription event applied: older events arriving late are ignored.
    billing_synced_at = models.DateTimeField(null=True, blank=True)
    created_at, updated_at = timestamps()

    class Meta:
        indexes = [
            # Stripe webhooks find the workspace by customer id.
            models.Index(fields=["stripe_customer_id"], name="accounts_ws_stripe_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class ApiKey(models.Model):
    """A workspace key `rt_ws_…`: only its SHA-256 hash and a short visible prefix are stored."""

    id = prefixed_id(_key_id)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    is_primary = models.BooleanField(default=False, help_text="The key that rotate-key replaces.")
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Scoped keys (Spooled's api-keys): the queues it may act on (empty: all), its own requests/minute (null: the
    # plan's), and when it stops working (null: never). Enforced on /v1 and /api/v1 alike (`refusal`).
    queues = models.JSONField(default=list, blank=True)
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "created_at"], name="accounts_key_ws_created")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows_queue(self, queue_name: str) -> bool:
        return not self.queues or queue_name in self.queues

    def refusal(self, *, now: datetime, path: str) -> tuple[int, str] | None:
        """Why this key may not make a request to `path` now, as (HTTP status, message), or None.

        An expired key is refused everywhere (401). A queue-scoped key acts on /v1 only under
        /v1/queues/{one of its queues}/ (403 elsewhere); under /api/v1 each route checks the queue it names.
        """
        if self.expires_at is not None and self.expires_at <= now:
            return 401, "This API key has expired."
        if not self.queues or path.startswith("/api/v1/"):
            return None
        parts = path.split("/")
        if len(parts) > 3 and parts[1:3] == ["v1", "queues"] and parts[3] in self.queues:
            return None
        return 403, "This API key is limited to queues " + ", ".join(self.queues) + "."
