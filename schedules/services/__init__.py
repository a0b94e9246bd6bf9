"""Schedules: create/update/replace/pause/resume/trigger/delete, and the set-based ticker that fires due
schedules. The face of the package: validation, CRUD and the ticker live in its modules."""

from __future__ import annotations

from .crud import _name_conflict as _name_conflict  # tests exercise the constraint-name mapping directly
from .crud import (
    schedule_create,
    schedule_delete,
    schedule_pause,
    schedule_replace,
    schedule_resume,
    schedule_update,
)
from .ticker import schedule_ticks_prune, schedule_trigger, schedules_fire_due, schedules_tick_window

__all__ = [
    "schedule_create",
    "schedule_delete",
    "schedule_pause",
    "schedule_replace",
    "schedule_resume",
    "schedule_ticks_prune",
    "schedule_trigger",
    "schedule_update",
    "schedules_fire_due",
    "schedules_tick_window",
]
