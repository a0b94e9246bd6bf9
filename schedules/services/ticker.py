"""The ticker that fires due schedules, the manual trigger, and tick-row housekeeping.

Firing is set-based on PostgreSQL (fire_sql: SQL plans, inserts and advances a whole batch) and row by row on
SQLite, the embedded single-writer mode (fire_rows). A batch whose set-based statement fails is fired row by row
instead, which isolates each workspace, so one broken row never stalls every schedule.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from accounts.models import Workspace
from config.db import backend
from jobs.models import Job
from queues.events import events_emit

from ..models import Schedule, ScheduleTick
from .fire_rows import enqueue, fire_batch_rows, fired_event, job_spec
from .fire_sql import fire_batch_sql

logger = logging.getLogger(__name__)

# Schedules per batch (one transaction each): the row path builds objects per schedule, the set-based one does not.
TICK_BATCH = 500
TICK_BATCH_SET_BASED = 2000
TICK_MAX_BATCHES = 100
# The tick window's rounds start at least this far apart: with thousands of one-second schedules on random
# phases something is always due, and a round per millisecond would spend the ticker on fixed costs. The lag it
# adds (at most this) is well inside PERF.md's p99 <= 1 s.
TICK_MIN_GAP_S = 0.05
# Tick rows only have to outlive the moment a duplicate could race them; keep an hour for inspection.
TICK_RETENTION = timedelta(hours=1)
TICK_PRUNE_BATCH = 10_000


def schedule_trigger(*, workspace: Workspace, schedule: Schedule) -> Job:
    """Run now: enqueue one job from the template, whatever the pause state and overlap; next_run_at is kept."""
    with transaction.atomic(durable=True):
        locked = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("queue")
            .get(workspace=workspace, pk=schedule.pk)
        )
        job = enqueue(workspace=workspace, queue=locked.queue, specs=[job_spec(locked, locked.queue)])[0]
        now = timezone.now()
        Schedule.objects.filter(pk=locked.pk).update(last_run_at=now, last_job_id=job.id)
        events_emit(
            [fired_event(locked, queue_name=locked.queue.name, job_id=job.id, tick_at=None, manual=True)]
        )
    job.queue = locked.queue
    return job


def _db_now() -> datetime:
    # "Due" is decided by the database clock, never a worker's (DESIGN.md, lessons).
    return backend().now()


def _set_based() -> bool:
    return backend().SET_BASED


def schedules_fire_due(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Fire every due schedule in batches of `batch_size`; returns the number of jobs enqueued.

    `now` replaces the database clock (tests drive daylight-saving changes with it).
    """
    set_based = _set_based()
    batch_size = batch_size or (TICK_BATCH_SET_BASED if set_based else TICK_BATCH)
    fired = 0
    # One "now" for every batch of this call: a schedule fired by batch 1 is not due again in batch 9 even when
    # the batches together take longer than its interval.
    if now is None:
        with transaction.atomic():
            now = _db_now()
    for _ in range(TICK_MAX_BATCHES):
        batch_fired, selected = _fire_batch(now=now, batch_size=batch_size, set_based=set_based)
        fired += batch_fired
        if selected < batch_size:
            break
    return fired


def _fire_batch(*, now: datetime, batch_size: int, set_based: bool) -> tuple[int, int]:
    with transaction.atomic(durable=True):
        if set_based:
            try:
                with transaction.atomic():
                    return fire_batch_sql(now=now, batch_size=batch_size)
            except Exception:
                logger.warning(
                    "set-based schedule firing failed; firing this batch row by row", exc_info=True
                )
        return fire_batch_rows(now=now, batch_size=batch_size)


def schedule_ticks_prune(*, now: datetime | None = None, max_batches: int = 10) -> int:
    """Delete tick rows older than TICK_RETENTION in bounded batches; returns how many went."""
    cutoff = (now or timezone.now()) - TICK_RETENTION
    deleted = 0
    for _ in range(max_batches):
        # Served by schedules_tick_tick_at.
        ids = list(
            ScheduleTick.objects.filter(tick_at__lt=cutoff).values_list("id", flat=True)[:TICK_PRUNE_BATCH]
        )
        if not ids:
            break
        deleted += ScheduleTick.objects.filter(id__in=ids).delete()[0]
        if len(ids) < TICK_PRUNE_BATCH:
            break
    return deleted


def schedules_tick_window(*, window_ms: int) -> int:
    """Fire due schedules repeatedly for up to `window_ms`, sleeping until the next due time.

    Beat starts the ticker once a second; looping inside that second fires each tick within milliseconds of
    its time instead of up to a second late (PERF.md: lag p99 <= 1 s with 100,000 schedules).
    """
    deadline = time.monotonic() + window_ms / 1000
    round_started = time.monotonic()
    fired = schedules_fire_due()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return fired
        soonest = Schedule.objects.filter(paused=False).aggregate(at=Min("next_run_at"))["at"]
        if soonest is None:
            return fired
        wait = max(
            (soonest - timezone.now()).total_seconds(), round_started + TICK_MIN_GAP_S - time.monotonic()
        )
        if wait > remaining:
            return fired
        time.sleep(min(max(wait, 0.005), remaining))
        round_started = time.monotonic()
        fired += schedules_fire_due()
