"""Schedule CRUD: create, update (PATCH), replace (PUT), delete, pause and resume."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Workspace
from billing.services import plan_slot_take
from config.exceptions import Conflict, violated_constraint
from queues.masking import target_unmasked
from queues.models import Queue

from .. import timing
from ..models import Overlap, Schedule
from .validation import validate

_NAME_CONSTRAINT = "schedules_schedule_ws_name_uniq"


def _first_run(
    *,
    cron: str | None,
    interval_ms: int | None,
    tz_name: str | None,
    now: datetime,
    anchor: datetime | None = None,
) -> datetime:
    if interval_ms is not None and anchor is None:
        return now + timedelta(milliseconds=interval_ms)
    return timing.next_fire(cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=now, anchor=anchor)


def _name_conflict(exc: IntegrityError, name: str) -> Conflict | None:
    if violated_constraint(exc, Schedule) == _NAME_CONSTRAINT:  # by name on PostgreSQL and SQLite alike
        return Conflict(
            f"A schedule named '{name}' already exists.",
            details={"name": ["A schedule with this name already exists."]},
        )
    return None


def schedule_create(*, workspace: Workspace, data: dict[str, Any], now: datetime | None = None) -> Schedule:
    """Create a schedule from a request body (validated here); 400, 402 PLAN_LIMIT or 409 CONFLICT."""
    cleaned = validate(workspace=workspace, data=data, current=None)
    now = now or timezone.now()
    values = cleaned.values
    with transaction.atomic():
        plan_slot_take(workspace=workspace, resource="schedules", model=Schedule)
        queue = cleaned.queue or _default_queue(workspace=workspace)
        schedule = Schedule(
            workspace=workspace,
            queue=queue,
            name=values["name"],
            description=values.get("description", ""),
            cron=values["cron"],
            interval_ms=values["interval_ms"],
            timezone=values["timezone"],
            job=values["job"],
            overlap=values.get("overlap", Overlap.ALLOW),
            paused=values.get("paused", False),
            next_run_at=_first_run(
                cron=values["cron"], interval_ms=values["interval_ms"], tz_name=values["timezone"], now=now
            ),
        )
        try:
            with transaction.atomic():
                schedule.save(force_insert=True)
        except IntegrityError as exc:
            raise (_name_conflict(exc, schedule.name) or exc) from None
    return schedule


def _default_queue(*, workspace: Workspace) -> Queue:
    from queues.services import queue_ensure_default

    return queue_ensure_default(workspace=workspace)


def schedule_update(
    *, workspace: Workspace, schedule: Schedule, data: dict[str, Any], now: datetime | None = None
) -> Schedule:
    """Apply a PATCH body; a change of cron, interval or timezone recomputes next_run_at from now."""
    cleaned = validate(workspace=workspace, data=data, current=schedule)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().select_related("queue").get(pk=schedule.pk)
        for field, value in cleaned.values.items():
            setattr(locked, field, _job_unmasked(value, locked.job) if field == "job" else value)
        if "queue" in data or cleaned.queue is None:
            locked.queue = cleaned.queue or _default_queue(workspace=workspace)
        _save_changed(
            locked, reschedule=cleaned.timing_changed or (schedule.paused and not locked.paused), now=now
        )
    return locked


def schedule_replace(
    *, workspace: Workspace, schedule: Schedule, data: dict[str, Any], now: datetime | None = None
) -> Schedule:
    """Apply a PUT body: a full replacement validated exactly as a create (`name` defaults to the current name;
    another name renames). Fields left out take their create defaults; `next_run_at` is recomputed from now when
    the timing changes or a paused schedule is resumed. History (`last_run_at`, `last_job_id`, ticks) stays."""
    body = {"name": schedule.name, **data} if isinstance(data, dict) else data
    cleaned = validate(workspace=workspace, data=body, current=None)
    values = cleaned.values
    now = now or timezone.now()
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().select_related("queue").get(pk=schedule.pk)
        timing_changed = (values["cron"], values["interval_ms"], values["timezone"]) != (
            locked.cron,
            locked.interval_ms,
            locked.timezone,
        )
        was_paused = locked.paused
        locked.name = values["name"]
        locked.description = values.get("description", "")
        locked.cron, locked.interval_ms, locked.timezone = (
            values["cron"],
            values["interval_ms"],
            values["timezone"],
        )
        locked.job = _job_unmasked(values["job"], locked.job)
        locked.overlap = values.get("overlap", Overlap.ALLOW)
        locked.paused = values.get("paused", False)
        locked.queue = cleaned.queue or _default_queue(workspace=workspace)
        _save_changed(locked, reschedule=timing_changed or (was_paused and not locked.paused), now=now)
    return locked


def _job_unmasked(new: Any, stored: Any) -> Any:
    """A job template whose http header values, read back masked and sent unchanged, keep their stored values."""
    if not (isinstance(new, dict) and isinstance(stored, dict) and isinstance(new.get("http"), dict)):
        return new
    return {**new, "http": target_unmasked(new["http"], stored.get("http"))}


def _save_changed(locked: Schedule, *, reschedule: bool, now: datetime) -> None:
    """Save an edited schedule under its lock; `reschedule`: next_run_at is recomputed from now first."""
    if reschedule:
        locked.next_run_at = _first_run(
            cron=locked.cron, interval_ms=locked.interval_ms, tz_name=locked.timezone, now=now
        )
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError as exc:
        raise (_name_conflict(exc, locked.name) or exc) from None


def schedule_delete(*, workspace: Workspace, schedule: Schedule) -> None:
    """Delete the schedule and its tick rows; the jobs it enqueued stay."""
    Schedule.objects.filter(workspace=workspace, pk=schedule.pk).delete()


def schedule_pause(*, workspace: Workspace, schedule: Schedule) -> Schedule:
    """Stop firing; idempotent."""
    with transaction.atomic():
        locked = (
            Schedule.objects.select_for_update()
            .select_related("queue")
            .get(workspace=workspace, pk=schedule.pk)
        )
        if not locked.paused:
            locked.paused = True
            locked.save(update_fields=["paused", "updated_at"])
    return locked


def schedule_resume(*, workspace: Workspace, schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Fire again from the next tick after now: ticks that fell while paused are not caught up. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Schedule.objects.select_for_update()
            .select_related("queue")
            .get(workspace=workspace, pk=schedule.pk)
        )
        if locked.paused:
            locked.paused = False
            # Interval schedules keep their grid (anchored on the last planned tick).
            anchor = locked.next_run_at if locked.interval_ms is not None else None
            locked.next_run_at = _first_run(
                cron=locked.cron,
                interval_ms=locked.interval_ms,
                tz_name=locked.timezone,
                now=now,
                anchor=anchor,
            )
            locked.save(update_fields=["paused", "next_run_at", "updated_at"])
    return locked
