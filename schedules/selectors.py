"""Reads for schedules: every query starts from the workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Workspace
from config.exceptions import NotFound
from jobs.models import Job

from .models import Schedule


def schedule_list(*, workspace: Workspace) -> QuerySet[Schedule]:
    # Keyset on name, served by schedules_schedule_ws_name_uniq (workspace, name).
    return Schedule.objects.filter(workspace=workspace).select_related("queue")


def schedule_get(*, workspace: Workspace, name: str) -> Schedule:
    """The workspace's schedule by name; another workspace's schedule is a 404 like an unknown one."""
    schedule = Schedule.objects.filter(workspace=workspace, name=name).select_related("queue").first()
    if schedule is None:
        raise NotFound(f"Schedule '{name}' not found.")
    return schedule


def schedule_runs(*, workspace: Workspace, schedule: Schedule) -> QuerySet[Job]:
    """The jobs this schedule enqueued (Job.schedule_id), for keyset pagination newest first."""
    return Job.objects.filter(workspace=workspace, schedule_id=schedule.id).select_related("queue")
