"""Schedule rendering (a plain function) and the OpenAPI shapes of requests and responses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rest_framework import serializers

from config.fields import schema_readers
from queues.events import iso
from queues.masking import target_masked

from .models import Schedule


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """The schedule object, field by field as ScheduleSchema declares it (timestamps in ISO 8601)."""
    return {name: render(schedule) for name, render in _RENDER.items()}


def _template_to_dict(template: dict[str, Any]) -> dict[str, Any]:
    out = {name: template.get(name) for name in JOB_TEMPLATE_FIELDS}
    out["tags"] = out["tags"] or []
    out["priority"] = out["priority"] or 0
    out["http"] = target_masked(out["http"])  # header values are credentials: never read back whole
    return out


def fire_time_to_dict(at: datetime, tz_name: str | None) -> dict[str, str | None]:
    local = at.astimezone(ZoneInfo(tz_name or "UTC"))
    return {"at": iso(at), "local": local.isoformat(timespec="seconds")}


class JobTemplateSchema(serializers.Serializer):
    name = serializers.CharField(allow_null=True, required=False, max_length=128)
    payload = serializers.JSONField(allow_null=True, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), max_length=10, required=False)
    priority = serializers.IntegerField(min_value=-100, max_value=100, required=False)
    http = serializers.JSONField(
        allow_null=True,
        required=False,
        help_text="{url, method, headers, body}: a push target (SSRF rules apply)",
    )
    retry_policy = serializers.JSONField(
        allow_null=True, required=False, help_text="merged over the queue's policy"
    )
    timeout_ms = serializers.IntegerField(allow_null=True, required=False, min_value=100, max_value=300_000)


class ScheduleInSchema(serializers.Serializer):
    """Request body. PATCH accepts any subset; `job` is merged key by key over the current template."""

    name = serializers.RegexField(r"^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,63}$")
    description = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    queue = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Required unless job.http is given (then the `default` queue)",
    )
    cron = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="5 fields or @hourly/@daily/@weekly/@monthly; exactly one of cron, interval_ms",
    )
    interval_ms = serializers.IntegerField(
        required=False, allow_null=True, min_value=1000, max_value=366 * 86_400_000
    )
    timezone = serializers.CharField(
        required=False, allow_null=True, help_text="IANA name, cron only (default UTC)"
    )
    job = JobTemplateSchema(required=False)
    overlap = serializers.ChoiceField(choices=["allow", "skip"], required=False)
    paused = serializers.BooleanField(required=False)


class ScheduleSchema(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    cron = serializers.CharField(allow_null=True)
    interval_ms = serializers.IntegerField(allow_null=True)
    timezone = serializers.CharField(allow_null=True, help_text="null for interval schedules")
    job = JobTemplateSchema()
    overlap = serializers.ChoiceField(choices=["allow", "skip"])
    paused = serializers.BooleanField()
    next_run_at = serializers.DateTimeField(allow_null=True, help_text="null while paused")
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_job_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class FireTimeSchema(serializers.Serializer):
    at = serializers.DateTimeField(help_text="UTC")
    local = serializers.CharField(help_text="ISO 8601 with the offset of the schedule's timezone")


class PreviewSchema(serializers.Serializer):
    data = FireTimeSchema(many=True)


# The schedule's shape is declared once, by the serializers above; input checks, rendering and the admin derive
# from them.
WRITABLE_FIELDS = frozenset(ScheduleInSchema._declared_fields)
# Response fields a body may not set, and the id (a column, never rendered): answered "read-only", not "unknown".
READ_ONLY_FIELDS = frozenset(ScheduleSchema._declared_fields) - WRITABLE_FIELDS | {"id"}
JOB_TEMPLATE_FIELDS = tuple(JobTemplateSchema._declared_fields)


_RENDER: dict[str, Callable[[Schedule], Any]] = schema_readers(ScheduleSchema, timestamp=iso)
_RENDER["queue"] = lambda schedule: schedule.queue.name
_RENDER["job"] = lambda schedule: _template_to_dict(schedule.job)
# A paused schedule has no next run: it is recomputed from "now" on resume.
_RENDER["next_run_at"] = lambda schedule: None if schedule.paused else iso(schedule.next_run_at)
