"""Queues: where jobs wait, with their delivery mode and flow-control settings; the outbox of events every app
above writes to; the per-queue per-minute rollup that metrics and usage read."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Value

from config.columns import owning_workspace, prefixed_id, timestamps
from config.ids import IdMaker

DEFAULT_RETRY_POLICY = {
    "max_attempts": 4,
    "backoff": "exponential",
    "initial_delay_ms": 1000,
    "multiplier": 2,
    "max_delay_ms": 300000,
    "jitter": True,
}


_queue_id = IdMaker("que")
_event_id = IdMaker("evt")


def default_retry_policy() -> dict:
    return dict(DEFAULT_RETRY_POLICY)


class Queue(models.Model):
    class Delivery(models.TextChoices):
        PUSH = "push", "Push: Spindle POSTs each job to the endpoint"
        PULL = "pull", "Pull: the workspace's workers claim jobs"

    id = prefixed_id(_queue_id)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="queues")
    name = models.CharField(max_length=64)
    delivery = models.CharField(max_length=8, choices=Delivery.choices, default=Delivery.PUSH)
    # {"url", "method", "headers", "timeout_ms"} or null (push jobs then need their own `http` target).
    endpoint = models.JSONField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    paused_job_names = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField(default=10)
    group_concurrency = models.PositiveIntegerField(null=True, blank=True)
    # {"max", "per_ms"} or null.
    rate_limit = models.JSONField(null=True, blank=True)
    retry_policy = models.JSONField(default=default_retry_policy)
    lease_ms = models.PositiveIntegerField(default=300000)
    signing_secret = models.CharField(max_length=100)
    previous_signing_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at, updated_at = timestamps()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="queues_queue_ws_name_uniq"),
            models.CheckConstraint(
                condition=models.Q(delivery__in=["push", "pull"]), name="queues_queue_delivery_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(concurrency__gte=1), name="queues_queue_concurrency_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def active_signing_secrets(self, now: datetime) -> list[str]:
        """Secrets that sign a delivery at `now`: the current one, plus the previous one for 24 h after rotation."""
        keys = [self.signing_secret]
        if (
            self.previous_signing_secret
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > now
        ):
            keys.append(self.previous_signing_secret)
        return keys


class Event(models.Model):
    """The outbox: written in the same transaction as the state change it records (DESIGN.md invariant 6)."""

    id = prefixed_id(_event_id)
    workspace = owning_workspace()
    type = models.CharField(max_length=32)
    queue_name = models.CharField(max_length=64, null=True, blank=True)
    job_id = models.CharField(max_length=40, null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        # Created by the jobs app (migration jobs 0001); moved here by state only, so table and index names stay.
        db_table = "jobs_event"
        indexes = [
            # GET /v1/events?after= oldest first, and per-queue streams.
            models.Index(fields=["workspace", "id"], name="jobs_event_ws"),
            models.Index(fields=["workspace", "queue_name", "id"], name="jobs_event_ws_queue"),
            models.Index(fields=["created_at"], name="jobs_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class QueueMinuteStat(models.Model):
    """Per-queue per-minute rollup written when attempts finish; metrics and usage read it, not executions."""

    workspace = owning_workspace()
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    enqueued = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    timeout = models.PositiveIntegerField(default=0)
    duration_sum_ms = models.PositiveBigIntegerField(default=0)
    duration_count = models.PositiveIntegerField(default=0)
    # Log-scale histogram of durations ({"bucket_upper_ms": count}) for p95 without scanning executions.
    duration_hist = models.JSONField(default=dict, blank=True)
    # Enqueue-to-start of the first attempts that finished this minute: a histogram like duration_hist
    # ({"bucket_upper_ms": count}, bounds jobs.services.stats.START_BOUNDS_MS), its sum and its count.
    # Database defaults too: the raw enqueue and schedule upserts name only the columns they add to.
    start_hist = models.JSONField(default=dict, blank=True, db_default=Value({}, models.JSONField()))
    start_sum_ms = models.PositiveBigIntegerField(default=0, db_default=0)
    start_count = models.PositiveIntegerField(default=0, db_default=0)
    # Attempts that ended with an error, by "<error type>|<HTTP status>" (either part may be empty).
    errors = models.JSONField(default=dict, blank=True, db_default=Value({}, models.JSONField()))

    class Meta:
        # Created by the jobs app (migration jobs 0001); moved here by state only, so table and index names stay.
        db_table = "jobs_queueminutestat"
        constraints = [
            models.UniqueConstraint(fields=["queue", "minute"], name="jobs_stat_queue_minute_uniq"),
        ]
        indexes = [models.Index(fields=["workspace", "minute"], name="jobs_stat_ws_minute")]
