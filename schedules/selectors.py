"""Reads for schedules: every query starts from the workspace."""

from __future__ import annotations

from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from accounts.models import Workspace
from config.db import backend
from config.exceptions import first_or_404
from jobs.models import Job

from .models import Schedule


def schedule_list(
    *, workspace: Workspace, paused: bool | None = None, tag: str | None = None, name: str | None = None
) -> QuerySet[Schedule]:
    """The workspace's schedules, optionally only active or paused ones, those whose job template carries `tag`,
    and those whose name contains `name` (case-insensitive)."""
    # Keyset on name, served by schedules_schedule_ws_name_uniq (workspace, name); the filters narrow that range.
    queryset = Schedule.objects.filter(workspace=workspace).select_related("queue")
    if paused is not None:
        queryset = queryset.filter(paused=paused)
    if name:
        queryset = queryset.filter(name__icontains=name)
    if tag is not None:
        if backend().SET_BASED:
            queryset = queryset.filter(job__tags__contains=[tag])
        else:
            # SQLite has no JSON containment: json_each scans the template's (short) tag list.
            queryset = queryset.filter(
                RawSQL(
                    'EXISTS (SELECT 1 FROM json_each("schedules_schedule"."job", \'$.tags\') WHERE json_each.value = %s)',
                    [tag],
                    output_field=BooleanField(),
                )
            )
    return queryset


def schedule_get(*, workspace: Workspace, name: str) -> Schedule:
    """The workspace's schedule by name; another workspace's schedule is a 404 like an unknown one."""
    schedules = Schedule.objects.filter(workspace=workspace, name=name).select_related("queue")
    return first_or_404(schedules, f"Schedule '{name}' not found.")


def schedule_runs(*, workspace: Workspace, schedule: Schedule) -> QuerySet[Job]:
    """The jobs this schedule enqueued (Job.schedule_id), for keyset pagination newest first."""
    return Job.objects.filter(workspace=workspace, schedule_id=schedule.id).select_related("queue")
