from django.contrib import admin

from .models import Schedule, ScheduleTick


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "queue", "cron", "interval_ms", "timezone", "paused", "next_run_at",
                    "last_run_at")
    list_filter = ("paused", "overlap")
    search_fields = ("name", "workspace__name", "id")
    raw_id_fields = ("workspace", "queue")
    readonly_fields = ("id", "last_run_at", "last_job_id", "created_at", "updated_at")


@admin.register(ScheduleTick)
class ScheduleTickAdmin(admin.ModelAdmin):
    list_display = ("schedule", "tick_at", "job_id", "created_at")
    raw_id_fields = ("schedule",)
