"""Staff admin for jobs, executions, events, workers and rollups. Lease tokens are shown masked."""

from __future__ import annotations

from django.contrib import admin

from jobs.models import Event, Execution, Job, QueueMinuteStat, Worker


def _mask(token: str | None) -> str:
    return f"{token[:4]}…" if token else "—"


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "queue", "name", "state", "priority", "attempts", "max_attempts", "run_at", "created_at")
    list_filter = ("state", "created_at")
    search_fields = ("id", "name", "idempotency_key", "group")
    raw_id_fields = ("workspace", "queue", "parent")
    readonly_fields = ("id", "lease_token_masked", "lease_expires_at", "execution_id", "worker_id", "attempts",
                       "deferrals", "created_at", "started_at", "finished_at", "updated_at")
    exclude = ("lease_token",)
    list_select_related = ("queue",)
    show_full_result_count = False  # COUNT(*) over a million-row table on every page is too slow

    @admin.display(description="lease token")
    def lease_token_masked(self, obj: Job) -> str:
        return _mask(obj.lease_token)


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "job_id", "queue", "attempt", "status", "http_status", "duration_ms", "started_at")
    list_filter = ("status", "started_at")
    search_fields = ("id", "job__id")
    raw_id_fields = ("workspace", "job", "queue")
    readonly_fields = ("id", "lease_token_masked", "started_at", "completed_at", "duration_ms", "http_status",
                       "response_body", "error", "worker_id")
    exclude = ("lease_token",)
    list_select_related = ("queue",)
    show_full_result_count = False

    @admin.display(description="lease token")
    def lease_token_masked(self, obj: Execution) -> str:
        return _mask(obj.lease_token)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "queue_name", "job_id", "created_at")
    list_filter = ("type",)
    search_fields = ("id", "job_id", "queue_name")
    raw_id_fields = ("workspace",)
    readonly_fields = ("id", "workspace", "type", "queue_name", "job_id", "data", "created_at")
    show_full_result_count = False


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "hostname", "concurrency", "last_seen_at", "created_at")
    search_fields = ("id", "name", "hostname")
    raw_id_fields = ("workspace",)
    readonly_fields = ("id", "created_at", "last_seen_at")


@admin.register(QueueMinuteStat)
class QueueMinuteStatAdmin(admin.ModelAdmin):
    list_display = ("queue", "minute", "enqueued", "completed", "failed", "timeout", "duration_count")
    list_filter = ("minute",)
    raw_id_fields = ("workspace", "queue")
    readonly_fields = ("duration_hist",)
