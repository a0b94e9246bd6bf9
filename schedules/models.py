"""Workspace schedules (cron or interval) and the tick rows that make each firing happen once."""

from __future__ import annotations

from django.db import models

from config.columns import owning_workspace, prefixed_id, timestamps
from config.ids import IdMaker

_schedule_id = IdMaker("sch")


class Overlap(models.TextChoices):
    ALLOW = "allow", "Fire on every tick, even while the previous run is unfinished"
    SKIP = "skip", "Skip a tick while the previous run is not terminal"


class Schedule(models.Model):
    """A recurring job template. The ticker fires it when `next_run_at` is due (DESIGN.md invariant 7)."""

    id = prefixed_id(_schedule_id)
    workspace = owning_workspace()
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True, default="")
    # Deleting a queue deletes its schedules: a schedule without a queue could never fire.
    queue = models.ForeignKey("queues.Queue", on_delete=models.CASCADE, related_name="+")
    cron = models.CharField(max_length=128, null=True, blank=True)
    interval_ms = models.PositiveBigIntegerField(null=True, blank=True)
    # IANA name; only with cron (null means UTC).
    timezone = models.CharField(max_length=64, null=True, blank=True)
    # {name, payload, tags, priority, http, retry_policy, timeout_ms}: what each tick enqueues.
    job = models.JSONField(default=dict, blank=True)
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.ALLOW)
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job_id = models.CharField(max_length=40, null=True, blank=True)
    created_at, updated_at = timestamps()

    class Meta:
        constraints = [
            # GET /v1/schedules lists by name (keyset) and every route addresses a schedule by name.
            models.UniqueConstraint(fields=["workspace", "name"], name="schedules_schedule_ws_name_uniq"),
            models.CheckConstraint(
                condition=models.Q(cron__isnull=False, interval_ms__isnull=True)
                | models.Q(cron__isnull=True, interval_ms__isnull=False),
                name="schedules_schedule_cron_xor_interval",
            ),
            models.CheckConstraint(
                condition=models.Q(timezone__isnull=True) | models.Q(cron__isnull=False),
                name="schedules_schedule_timezone_only_cron",
            ),
            models.CheckConstraint(
                condition=models.Q(interval_ms__isnull=True) | models.Q(interval_ms__gte=1000),
                name="schedules_schedule_interval_min",
            ),
            models.CheckConstraint(
                condition=models.Q(overlap__in=Overlap.values), name="schedules_schedule_overlap_valid"
            ),
        ]
        indexes = [
            # The ticker: `WHERE NOT paused AND next_run_at <= now() ORDER BY next_run_at FOR UPDATE SKIP LOCKED`.
            models.Index(
                fields=["next_run_at"], condition=models.Q(paused=False), name="schedules_schedule_due"
            ),
            # The set-based ticker's due cron schedules, whose ticks Python computes (croniter, DST rules).
            models.Index(
                fields=["next_run_at"],
                condition=models.Q(paused=False, cron__isnull=False),
                name="schedules_schedule_cron_due",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ScheduleTick(models.Model):
    """One row per fired tick. The unique (schedule, tick_at) makes a second ticker or a retried task harmless.

    `job_id` is null when the tick enqueued nothing (the workspace's monthly quota was used up).
    """

    id = models.BigAutoField(primary_key=True)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="ticks", db_index=False)
    tick_at = models.DateTimeField()
    job_id = models.CharField(max_length=40, null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick_at"], name="schedules_tick_schedule_tick_uniq"),
        ]
        indexes = [
            # Pruning old tick rows in bounded batches (`WHERE tick_at < cutoff`).
            models.Index(fields=["tick_at"], name="schedules_tick_tick_at"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.tick_at.isoformat()}"
