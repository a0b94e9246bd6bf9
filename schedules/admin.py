"""Staff admin for schedules. Schedules are created through the API; an edit goes through the API's validation
and its PATCH service (ScheduleAdminForm), and what the API addresses a schedule by stays read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from queues.admin_forms import ViewOnlyAdmin

from .admin_forms import ScheduleAdminForm
from .models import Schedule, ScheduleTick
from .serializers import READ_ONLY_FIELDS
from .services.crud import schedule_update

# The name and queue are set at create (a rename or a move is the API's PUT); the rest of the read-only set is
# what the API never lets a client set, except next_run_at: staff may move a schedule's next run.
FIXED_FIELDS = ("workspace", "name", "queue")


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleAdminForm
    list_display = (
        "name",
        "workspace",
        "queue",
        "cron",
        "interval_ms",
        "timezone",
        "paused",
        "next_run_at",
        "last_run_at",
    )
    list_filter = ("paused", "overlap")
    search_fields = ("name", "workspace__name", "id")
    raw_id_fields = ("workspace", "queue")
    readonly_fields = (
        *FIXED_FIELDS,
        *(f.name for f in Schedule._meta.fields if f.name in READ_ONLY_FIELDS - {"next_run_at"}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # through the API: it picks the queue, checks the plan and computes the first run

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        if form.api_changes:
            # The PATCH service re-reads the row under its lock and reschedules when the timing or pause changed.
            current = Schedule.objects.select_related("workspace").get(pk=obj.pk)
            schedule_update(workspace=current.workspace, schedule=current, data=form.api_changes)
        if "next_run_at" in form.changed_data:
            Schedule.objects.filter(pk=obj.pk).update(next_run_at=form.cleaned_data["next_run_at"])


@admin.register(ScheduleTick)
class ScheduleTickAdmin(ViewOnlyAdmin):
    list_display = ("schedule", "tick_at", "job_id", "created_at")
    raw_id_fields = ("schedule",)
