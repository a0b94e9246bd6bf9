"""The row-by-row firing path: SQLite (embedded mode), and PostgreSQL's fallback for a batch whose set-based
statement failed (it isolates each workspace in a savepoint, so one broken template costs only its own ticks).

Same rows and events as fire_sql (tests hold both to it): tick rows first (the unique (schedule, tick_at) makes a
racing ticker's rows not ours), then each workspace's jobs through job_enqueue_specs, then the schedules advance.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from config.db import backend
from config.exceptions import ApplicationError, QuotaExceeded
from jobs.models import TERMINAL_STATES, Execution, ExecutionStatus, Job
from jobs.services.stats import StatDelta, stats_record
from jobs.specs import JobSpec
from queues.events import PendingEvent, events_emit, iso
from queues.models import DEFAULT_RETRY_POLICY, Queue

from .. import timing
from ..models import Overlap, Schedule, ScheduleTick

logger = logging.getLogger(__name__)

# A tick late by less than the grace (a beat that ran a little late) still gets its own job, so a one-second
# schedule has no gaps; a backlog older than that is downtime and fires once for all missed ticks.
CATCHUP_GRACE = timedelta(milliseconds=getattr(settings, "SPINDLE_SCHEDULE_CATCHUP_GRACE_MS", 5000))


def job_spec(schedule: Schedule, queue: Queue) -> JobSpec:
    """The job a tick enqueues. A partial retry policy is merged over the queue's policy as it is now."""
    template = schedule.job or {}
    policy = template.get("retry_policy")
    return JobSpec(
        payload=template.get("payload"),
        name=template.get("name"),
        tags=list(template.get("tags") or []),
        priority=template.get("priority") or 0,
        retry_policy={**(queue.retry_policy or DEFAULT_RETRY_POLICY), **policy} if policy else None,
        timeout_ms=template.get("timeout_ms"),
        http=template.get("http"),
        schedule_id=schedule.id,
    )


def enqueue(*, workspace: Workspace, queue: Queue, specs: list[JobSpec]) -> list[Job]:
    from jobs.services.enqueue import job_enqueue_specs

    return [job for job, _created in job_enqueue_specs(workspace=workspace, queue=queue, specs=specs)]


def fired_event(
    schedule: Schedule, *, queue_name: str, job_id: str, tick_at: datetime | None, manual: bool = False
) -> PendingEvent:
    return PendingEvent(
        workspace_id=schedule.workspace_id,
        type="schedule:fired",
        queue_name=queue_name,
        job_id=job_id,
        data={"schedule": schedule.name, "tick_at": iso(tick_at), "manual": manual},
    )


def _tick_key(schedule_id: str, value: Any) -> tuple[str, str]:
    if isinstance(value, str):  # SQLite returns the stored text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return schedule_id, value.astimezone(UTC).isoformat()


def _insert_ticks(pairs: list[tuple[str, datetime]], created_at: datetime) -> dict[tuple[str, str], int]:
    """Insert tick rows, skipping existing ones; returns {(schedule_id, tick): tick row id} for the ones WE inserted.

    ON CONFLICT DO NOTHING against schedules_tick_schedule_tick_uniq: a racing ticker's rows are not ours, so
    only the winner of each (schedule, tick) enqueues. Works on PostgreSQL and SQLite (>= 3.35) alike.
    """
    if not pairs:
        return {}
    adapt = connection.ops.adapt_datetimefield_value
    created = adapt(created_at)
    won: dict[tuple[str, str], int] = {}
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]
        params: list[Any] = []
        for schedule_id, tick_at in chunk:
            params += [schedule_id, adapt(tick_at), created]
        sql = (
            "INSERT INTO schedules_scheduletick (schedule_id, tick_at, created_at) VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(chunk))
            + " ON CONFLICT (schedule_id, tick_at) DO NOTHING RETURNING id, schedule_id, tick_at"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for row_id, schedule_id, tick_at in cursor.fetchall():
                won[_tick_key(schedule_id, tick_at)] = row_id
    return won


def fire_batch_rows(*, now: datetime, batch_size: int) -> tuple[int, int]:
    """Fire up to `batch_size` due schedules row by row; returns (jobs enqueued, schedules selected)."""
    with transaction.atomic():
        # Served by schedules_schedule_due (partial on NOT paused). SKIP LOCKED: a second ticker takes other
        # rows or none; once we commit, these rows' next_run_at is in the future and no longer match.
        schedules = list(
            Schedule.objects.filter(paused=False, next_run_at__lte=now)
            .select_related("workspace__plan", "queue")
            .order_by("next_run_at")
            .select_for_update(skip_locked=True, of=("self",))[:batch_size]
        )
        if not schedules:
            return 0, 0
        plan, new_next = _plan_ticks(schedules, now)
        won = _insert_ticks([(s.id, t) for s, t in plan], created_at=timezone.now())
        plan = [(s, t) for s, t in plan if _tick_key(s.id, t) in won]
        fired = _Fired()
        by_workspace: dict[str, list[tuple[Schedule, datetime]]] = defaultdict(list)
        for schedule, tick in plan:
            by_workspace[schedule.workspace_id].append((schedule, tick))
        for items in by_workspace.values():
            _fire_workspace(items, won=won, now=now, fired=fired)
        events_emit(fired.events)
        if fired.refused:
            Execution.objects.bulk_create(fired.refused)
            stats_record(deltas=_refusal_deltas(fired.refused), now=now)
        for schedule in schedules:
            schedule.next_run_at = new_next[schedule.id]
        _write_back(schedules, fired.tick_jobs)
        return fired.enqueued, len(schedules)


def _plan_ticks(
    schedules: list[Schedule], now: datetime
) -> tuple[list[tuple[Schedule, datetime]], dict[str, datetime]]:
    """(the (schedule, tick) pairs to fire, each schedule's new next_run_at). overlap=skip: the previous job
    must be terminal, and a backlog fires once."""
    skip_ids = {s.last_job_id for s in schedules if s.overlap == Overlap.SKIP and s.last_job_id}
    running = (
        set(
            Job.objects.filter(id__in=skip_ids)
            .exclude(state__in=TERMINAL_STATES)
            .values_list("id", flat=True)
        )
        if skip_ids
        else set()
    )

    plan: list[tuple[Schedule, datetime]] = []
    new_next: dict[str, datetime] = {}
    for schedule in schedules:
        assert schedule.next_run_at is not None
        ticks, new_next[schedule.id] = timing.due_ticks(
            cron=schedule.cron,
            interval_ms=schedule.interval_ms,
            tz_name=schedule.timezone,
            first=schedule.next_run_at,
            now=now,
            grace=CATCHUP_GRACE,
        )
        if schedule.overlap == Overlap.SKIP:
            if schedule.last_job_id in running:
                continue
            ticks = ticks[:1]
        plan.extend((schedule, tick) for tick in ticks)
    return plan, new_next


@dataclass
class _Fired:
    """What one batch's enqueues produced, written once at its end."""

    tick_jobs: list[ScheduleTick] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)
    refused: list[Execution] = field(default_factory=list)
    enqueued: int = 0


def _fire_workspace(
    items: list[tuple[Schedule, datetime]], *, won: dict[tuple[str, str], int], now: datetime, fired: _Fired
) -> None:
    """Enqueue one workspace's ticks inside a savepoint: a workspace over its quota (or with a broken template)
    loses its ticks (the tick rows stay, with no job), never another workspace's."""
    workspace = items[0][0].workspace
    by_queue: dict[str, list[tuple[Schedule, datetime]]] = defaultdict(list)
    for schedule, tick in items:
        by_queue[schedule.queue_id].append((schedule, tick))
    try:
        with transaction.atomic():
            results: list[tuple[Schedule, datetime, Job]] = []
            for queue_items in by_queue.values():
                queue = queue_items[0][0].queue
                jobs = enqueue(
                    workspace=workspace, queue=queue, specs=[job_spec(s, queue) for s, _t in queue_items]
                )
                results.extend((s, t, j) for (s, t), j in zip(queue_items, jobs, strict=True))
    except QuotaExceeded as exc:
        # API.md Executions: a run the monthly quota refused is visible as a `quota_exceeded` execution
        # of the schedule (no job), not a silent gap; the tick row stays without a job.
        logger.info("schedule ticks of workspace %s refused by the quota", workspace.id)
        fired.refused.extend(_quota_refusal(schedule, tick, now, exc) for schedule, tick in items)
        return
    except ApplicationError as exc:
        logger.warning("schedule ticks of workspace %s not enqueued: %s", workspace.id, exc.code)
        return
    except Exception:
        logger.exception("schedule ticks of workspace %s failed", workspace.id)
        return
    for schedule, tick, job in results:
        fired.tick_jobs.append(ScheduleTick(id=won[_tick_key(schedule.id, tick)], job_id=job.id))
        fired.events.append(
            fired_event(schedule, queue_name=schedule.queue.name, job_id=job.id, tick_at=tick)
        )
        schedule.last_run_at = now
        schedule.last_job_id = job.id
    fired.enqueued += len(results)


def _refusal_deltas(refused: list[Execution]) -> list[StatDelta]:
    """The rollup's share of the refused ticks: one `quota_exceeded` error each (/metrics reads it there)."""
    deltas: dict[str, StatDelta] = {}
    for execution in refused:
        queue_id = execution.queue_id
        delta = deltas.setdefault(queue_id, StatDelta(queue_id=queue_id, workspace_id=execution.workspace_id))
        delta.add_error(execution.error, None)
    return list(deltas.values())


def _quota_refusal(schedule: Schedule, tick: datetime, now: datetime, exc: QuotaExceeded) -> Execution:
    """The execution row of a tick the monthly quota refused: no job, attempt 0 (nothing was started)."""
    return Execution(
        workspace_id=schedule.workspace_id,
        job=None,
        queue_id=schedule.queue_id,
        schedule_id=schedule.id,
        attempt=0,
        status=ExecutionStatus.QUOTA_EXCEEDED,
        started_at=now,
        completed_at=now,
        duration_ms=0,
        error={"message": exc.message, "type": "quota_exceeded", "tick_at": iso(tick), **exc.details},
    )


def _write_back(schedules: list[Schedule], tick_jobs: list[ScheduleTick]) -> None:
    """Advance the schedules and link tick rows to their jobs: one UPDATE … FROM (VALUES …) each on PostgreSQL.

    Django's bulk_update builds a CASE per row and field, which cost ~4 ms per schedule here (PERF.md wants a
    thousand one-second schedules fired well inside a second).
    """
    if not backend().SET_BASED:
        ScheduleTick.objects.bulk_update(tick_jobs, ["job_id"], batch_size=500)
        Schedule.objects.bulk_update(schedules, ["next_run_at", "last_run_at", "last_job_id"], batch_size=500)
        return
    with connection.cursor() as cursor:
        for start in range(0, len(schedules), 1000):
            chunk = schedules[start : start + 1000]
            params: list[Any] = []
            for s in chunk:
                params += [s.id, s.next_run_at, s.last_run_at, s.last_job_id]
            cursor.execute(
                "UPDATE schedules_schedule AS s SET next_run_at = v.next_run_at, last_run_at = v.last_run_at,"
                " last_job_id = v.last_job_id FROM (VALUES "
                + ", ".join(["(%s, %s::timestamptz, %s::timestamptz, %s::varchar)"] * len(chunk))
                + ") AS v(id, next_run_at, last_run_at, last_job_id) WHERE s.id = v.id",
                params,
            )
        for start in range(0, len(tick_jobs), 1000):
            ticks_chunk = tick_jobs[start : start + 1000]
            params = []
            for t in ticks_chunk:
                params += [t.id, t.job_id]
            cursor.execute(
                "UPDATE schedules_scheduletick AS t SET job_id = v.job_id FROM (VALUES "
                + ", ".join(["(%s::bigint, %s::varchar)"] * len(ticks_chunk))
                + ") AS v(id, job_id) WHERE t.id = v.id",
                params,
            )
