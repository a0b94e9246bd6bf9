from django.contrib import admin

from .models import Schedule, ScheduleTick
from .serializers import READ_ONLY_FIELDS


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "queue", "cron", "interval_ms", "timezone", "paused", "next_run_at",
                    "last_run_at")
    list_filter = ("paused", "overlap")
    search_fields = ("name", "workspace__name", "id")
    raw_id_fields = ("workspace", "queue")
    # What the API never lets a client set, except next_run_at: staff may move a schedule's next run.
    readonly_fields = tuple(
        f.name for f in Schedule._meta.fields if f.name in READ_ONLY_FIELDS - {"next_run_at"}
    )


@admin.register(ScheduleTick)
class ScheduleTickAdmin(admin.ModelAdmin):
    list_display = ("schedule", "tick_at", "job_id", "created_at")
    raw_id_fields = ("schedule",)
