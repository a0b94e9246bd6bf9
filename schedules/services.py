"""Schedules: create/update/pause/resume/trigger/delete, and the set-based ticker that fires due schedules."""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Min
from django.utils import timezone

from accounts.models import Workspace
from billing.services import plan_check_count
from config.exceptions import (
    ApplicationError,
    Conflict,
    PayloadTooLarge,
    PlanLimit,
    QuotaExceeded,
    ValidationFailed,
    violated_constraint,
)
from jobs.models import TERMINAL_STATES, Execution, ExecutionStatus, Job
from jobs.services.events import PendingEvent, events_emit, iso
from jobs.specs import JobSpec
from queues.models import DEFAULT_RETRY_POLICY, Queue

from . import timing
from .models import Overlap, Schedule, ScheduleTick

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,63}$")
MAX_DESCRIPTION_CHARS = 1000
MIN_INTERVAL_MS = 1000
MAX_INTERVAL_MS = 366 * 86_400_000
JOB_TEMPLATE_FIELDS = frozenset({"name", "payload", "tags", "priority", "http", "retry_policy", "timeout_ms"})
WRITABLE_FIELDS = frozenset(
    {"name", "description", "queue", "cron", "interval_ms", "timezone", "job", "overlap", "paused"}
)
READ_ONLY_FIELDS = frozenset({"id", "next_run_at", "last_run_at", "last_job_id", "created_at", "updated_at"})

# Ticker tuning. A tick late by less than the grace (a beat that ran a little late) still gets its own job, so a
# one-second schedule has no gaps; a backlog older than that is downtime and fires once for all missed ticks.
TICK_BATCH = 500
TICK_MAX_BATCHES = 100
CATCHUP_GRACE = timedelta(milliseconds=getattr(settings, "SPINDLE_SCHEDULE_CATCHUP_GRACE_MS", 5000))
# Tick rows only have to outlive the moment a duplicate could race them; keep an hour for inspection.
TICK_RETENTION = timedelta(hours=1)
TICK_PRUNE_BATCH = 10_000

_NAME_CONSTRAINT = "schedules_schedule_ws_name_uniq"


# -- validation --------------------------------------------------------------------------------------------------


@dataclass
class _Cleaned:
    values: dict[str, Any]
    queue: Queue | None  # None: create the `default` queue on demand
    timing_changed: bool


def _int(value: Any) -> bool:
    return type(value) is int  # JSON `true` is not a number


def _validate(*, workspace: Workspace, data: dict[str, Any], current: Schedule | None) -> _Cleaned:
    """Check a create (current=None) or PATCH body; 400 for field errors first, then 413, then 402."""
    errors: dict[str, list[str]] = {}
    for key in data.keys() - WRITABLE_FIELDS:
        errors[key] = ["This field is read-only."] if key in READ_ONLY_FIELDS else ["Unknown field."]
    values: dict[str, Any] = {}

    if "name" in data or current is None:
        name = data.get("name")
        if type(name) is not str or not NAME_RE.match(name):
            errors["name"] = ["Expected 1-64 characters: letters, digits and _.:- (starting with a letter or digit)."]
        else:
            values["name"] = name

    if "description" in data:
        description = data["description"]
        if description is None:
            values["description"] = ""
        elif type(description) is not str or len(description) > MAX_DESCRIPTION_CHARS:
            errors["description"] = [f"Expected a string of at most {MAX_DESCRIPTION_CHARS} characters."]
        else:
            values["description"] = description

    if "overlap" in data:
        if data["overlap"] not in Overlap.values:
            errors["overlap"] = ['Expected "allow" or "skip".']
        else:
            values["overlap"] = data["overlap"]

    if "paused" in data:
        if type(data["paused"]) is not bool:
            errors["paused"] = ["Expected a boolean."]
        else:
            values["paused"] = data["paused"]

    # Timing: the merged result must have exactly one of cron and interval_ms; timezone only with cron.
    cron = current.cron if current else None
    interval_ms = current.interval_ms if current else None
    tz_name = current.timezone if current else None
    if "cron" in data and data["cron"] is not None:
        try:
            cron = timing.normalize_cron(data["cron"])
        except ValueError as exc:
            errors["cron"] = [str(exc)]
        if "interval_ms" not in data:
            interval_ms = None  # switching an interval schedule to cron
    elif "cron" in data:
        cron = None
    if "interval_ms" in data and data["interval_ms"] is not None:
        value = data["interval_ms"]
        if not _int(value) or not MIN_INTERVAL_MS <= value <= MAX_INTERVAL_MS:
            errors["interval_ms"] = [f"Expected an integer between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}."]
        else:
            interval_ms = value
        if "cron" not in data:
            cron = None  # switching a cron schedule to an interval
            if "timezone" not in data:
                tz_name = None
    elif "interval_ms" in data:
        interval_ms = None
    if "timezone" in data:
        tz_value = data["timezone"]
        if tz_value is None:
            tz_name = None
        else:
            try:
                tz_name = timing.validate_timezone(tz_value)
            except ValueError as exc:
                errors["timezone"] = [str(exc)]
    has_cron = cron is not None or "cron" in errors
    has_interval = interval_ms is not None or "interval_ms" in errors
    if has_cron and has_interval:
        errors.setdefault("cron", []).append("Give either cron or interval_ms, not both.")
    elif not has_cron and not has_interval:
        errors["cron"] = ["One of cron or interval_ms is required."]
    elif has_interval and tz_name is not None and "timezone" in data:
        errors["timezone"] = ["timezone applies to cron schedules only."]
    if has_cron and tz_name is None:
        tz_name = "UTC"
    if not has_cron:
        tz_name = None
    values.update(cron=cron, interval_ms=interval_ms, timezone=tz_name)
    timing_changed = current is None or (cron, interval_ms, tz_name) != (
        current.cron, current.interval_ms, current.timezone
    )

    # The job template, merged key by key over the current one on PATCH.
    template: dict[str, Any] = dict(current.job) if current else {}
    if "job" in data:
        given = data["job"]
        if given is None:
            given = {}
        if not isinstance(given, dict):
            errors["job"] = ["Expected an object."]
            given = {}
        for key in given.keys() - JOB_TEMPLATE_FIELDS:
            errors[f"job.{key}"] = ["Unknown field."]
        template.update({k: v for k, v in given.items() if k in JOB_TEMPLATE_FIELDS})
        template = {k: v for k, v in template.items() if v is not None}
    has_http = template.get("http") is not None

    # The queue: named, or the workspace's `default` push queue when the template carries an http target.
    queue: Queue | None = current.queue if current else None
    if "queue" in data or current is None:
        queue_name = data.get("queue")
        if queue_name is None:
            queue = None
            if not has_http:
                errors["queue"] = ["This field is required unless job.http is given."]
            else:
                queue = Queue.objects.filter(workspace=workspace, name="default").first()
        elif type(queue_name) is not str:
            errors["queue"] = ["Expected a queue name."]
        else:
            queue = Queue.objects.filter(workspace=workspace, name=queue_name).first()
            if queue is None:
                errors["queue"] = [f"Unknown queue '{queue_name}'."]

    # Template values: the same rules as a job body (jobs.validation), checked against the queue it will use.
    later: ApplicationError | None = None
    if "queue" not in errors and not any(k.startswith("job") for k in errors):
        probe = queue or Queue(workspace=workspace, name="default", delivery=Queue.Delivery.PUSH,
                               endpoint=None, retry_policy=dict(DEFAULT_RETRY_POLICY))
        try:
            spec = _job_validator(workspace=workspace, queue=probe).validate_one(template)
            if spec.http is not None:
                template["http"] = spec.http
        except ValidationFailed as exc:
            errors.update({f"job.{k}": v for k, v in exc.details.items()})
        except (PayloadTooLarge, PlanLimit) as exc:
            details = dict(exc.details)
            if "field" in details:
                details["field"] = f"job.{details['field']}"
            exc.details = {(f"job.{k}" if k == "payload" else k): v for k, v in details.items()}
            later = exc
    if errors:
        raise ValidationFailed(details=errors)
    if later is not None:
        raise later
    values["job"] = template
    return _Cleaned(values=values, queue=queue, timing_changed=timing_changed)


def _job_validator(*, workspace: Workspace, queue: Queue) -> Any:
    # Imported late: jobs.validation pulls in the SSRF guard and settings that only matter for writes.
    from jobs.validation import JobValidator

    return JobValidator(workspace=workspace, queue=queue)


def _first_run(*, cron: str | None, interval_ms: int | None, tz_name: str | None, now: datetime,
               anchor: datetime | None = None) -> datetime:
    if interval_ms is not None and anchor is None:
        return now + timedelta(milliseconds=interval_ms)
    return timing.next_fire(cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=now, anchor=anchor)


def _name_conflict(exc: IntegrityError, name: str) -> Conflict | None:
    if violated_constraint(exc, Schedule) == _NAME_CONSTRAINT:  # by name on PostgreSQL and SQLite alike
        return Conflict(f"A schedule named '{name}' already exists.",
                        details={"name": ["A schedule with this name already exists."]})
    return None


# -- CRUD --------------------------------------------------------------------------------------------------------


def schedule_create(*, workspace: Workspace, data: dict[str, Any], now: datetime | None = None) -> Schedule:
    """Create a schedule from a request body (validated here); 400, 402 PLAN_LIMIT or 409 CONFLICT."""
    cleaned = _validate(workspace=workspace, data=data, current=None)
    now = now or timezone.now()
    values = cleaned.values
    with transaction.atomic():
        # Lock the workspace row so two parallel creates cannot both pass the plan's schedule cap.
        Workspace.objects.select_for_update().filter(pk=workspace.pk).exists()
        plan_check_count(workspace=workspace, resource="schedules",
                         current=Schedule.objects.filter(workspace=workspace).count())
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
            next_run_at=_first_run(cron=values["cron"], interval_ms=values["interval_ms"],
                                   tz_name=values["timezone"], now=now),
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


def schedule_update(*, workspace: Workspace, schedule: Schedule, data: dict[str, Any],
                    now: datetime | None = None) -> Schedule:
    """Apply a PATCH body; a change of cron, interval or timezone recomputes next_run_at from now."""
    cleaned = _validate(workspace=workspace, data=data, current=schedule)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().select_related("queue").get(pk=schedule.pk)
        for field, value in cleaned.values.items():
            setattr(locked, field, value)
        if "queue" in data or cleaned.queue is None:
            locked.queue = cleaned.queue or _default_queue(workspace=workspace)
        was_paused = schedule.paused
        if cleaned.timing_changed or (was_paused and not locked.paused):
            locked.next_run_at = _first_run(cron=locked.cron, interval_ms=locked.interval_ms,
                                            tz_name=locked.timezone, now=now)
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError as exc:
            raise (_name_conflict(exc, locked.name) or exc) from None
    return locked


def schedule_replace(*, workspace: Workspace, schedule: Schedule, data: dict[str, Any],
                     now: datetime | None = None) -> Schedule:
    """Apply a PUT body: a full replacement validated exactly as a create (`name` defaults to the current name;
    another name renames). Fields left out take their create defaults; `next_run_at` is recomputed from now when
    the timing changes or a paused schedule is resumed. History (`last_run_at`, `last_job_id`, ticks) stays."""
    body = {"name": schedule.name, **data} if isinstance(data, dict) else data
    cleaned = _validate(workspace=workspace, data=body, current=None)
    values = cleaned.values
    now = now or timezone.now()
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().select_related("queue").get(pk=schedule.pk)
        timing_changed = (values["cron"], values["interval_ms"], values["timezone"]) != (
            locked.cron, locked.interval_ms, locked.timezone
        )
        was_paused = locked.paused
        locked.name = values["name"]
        locked.description = values.get("description", "")
        locked.cron, locked.interval_ms, locked.timezone = values["cron"], values["interval_ms"], values["timezone"]
        locked.job = values["job"]
        locked.overlap = values.get("overlap", Overlap.ALLOW)
        locked.paused = values.get("paused", False)
        locked.queue = cleaned.queue or _default_queue(workspace=workspace)
        if timing_changed or (was_paused and not locked.paused):
            locked.next_run_at = _first_run(cron=locked.cron, interval_ms=locked.interval_ms,
                                            tz_name=locked.timezone, now=now)
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError as exc:
            raise (_name_conflict(exc, locked.name) or exc) from None
    return locked


def schedule_delete(*, workspace: Workspace, schedule: Schedule) -> None:
    """Delete the schedule and its tick rows; the jobs it enqueued stay."""
    Schedule.objects.filter(workspace=workspace, pk=schedule.pk).delete()


def schedule_pause(*, workspace: Workspace, schedule: Schedule) -> Schedule:
    """Stop firing; idempotent."""
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().select_related("queue").get(workspace=workspace, pk=schedule.pk)
        if not locked.paused:
            locked.paused = True
            locked.save(update_fields=["paused", "updated_at"])
    return locked


def schedule_resume(*, workspace: Workspace, schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Fire again from the next tick after now: ticks that fell while paused are not caught up. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().select_related("queue").get(workspace=workspace, pk=schedule.pk)
        if locked.paused:
            locked.paused = False
            # Interval schedules keep their grid (anchored on the last planned tick).
            anchor = locked.next_run_at if locked.interval_ms is not None else None
            locked.next_run_at = _first_run(cron=locked.cron, interval_ms=locked.interval_ms,
                                            tz_name=locked.timezone, now=now, anchor=anchor)
            locked.save(update_fields=["paused", "next_run_at", "updated_at"])
    return locked


# -- firing -------------------------------------------------------------------------------------------------------


def _job_spec(schedule: Schedule, queue: Queue) -> JobSpec:
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


def _enqueue(*, workspace: Workspace, queue: Queue, specs: list[JobSpec]) -> list[Job]:
    from jobs.services.enqueue import job_enqueue_specs

    return [job for job, _created in job_enqueue_specs(workspace=workspace, queue=queue, specs=specs)]


def _fired_event(schedule: Schedule, *, queue_name: str, job_id: str, tick_at: datetime | None,
                 manual: bool = False) -> PendingEvent:
    return PendingEvent(
        workspace_id=schedule.workspace_id,
        type="schedule:fired",
        queue_name=queue_name,
        job_id=job_id,
        data={"schedule": schedule.name, "tick_at": iso(tick_at), "manual": manual},
    )


def schedule_trigger(*, workspace: Workspace, schedule: Schedule) -> Job:
    """Run now: enqueue one job from the template, whatever the pause state and overlap; next_run_at is kept."""
    with transaction.atomic(durable=True):
        locked = (Schedule.objects.select_for_update(of=("self",)).select_related("queue")
                  .get(workspace=workspace, pk=schedule.pk))
        job = _enqueue(workspace=workspace, queue=locked.queue, specs=[_job_spec(locked, locked.queue)])[0]
        now = timezone.now()
        Schedule.objects.filter(pk=locked.pk).update(last_run_at=now, last_job_id=job.id)
        events_emit([_fired_event(locked, queue_name=locked.queue.name, job_id=job.id, tick_at=None, manual=True)])
    job.queue = locked.queue
    return job


def _db_now() -> datetime:
    # "Due" is decided by the database clock, never a worker's (DESIGN.md, lessons).
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def _ticks_for(schedule: Schedule, now: datetime) -> tuple[list[datetime], datetime]:
    """(tick times to fire, new next_run_at > now). Late by more than the grace: one fire for the backlog."""
    first = schedule.next_run_at
    assert first is not None
    ticks = [first]
    nxt = timing.next_fire(cron=schedule.cron, interval_ms=schedule.interval_ms, tz_name=schedule.timezone,
                           after=first, anchor=first)
    if first >= now - CATCHUP_GRACE:
        while nxt <= now:
            ticks.append(nxt)
            nxt = timing.next_fire(cron=schedule.cron, interval_ms=schedule.interval_ms,
                                   tz_name=schedule.timezone, after=nxt, anchor=nxt)
    elif nxt <= now:
        nxt = timing.next_fire(cron=schedule.cron, interval_ms=schedule.interval_ms, tz_name=schedule.timezone,
                               after=now, anchor=first)
    return ticks, nxt


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
        chunk = pairs[start:start + 1000]
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


def schedules_fire_due(*, now: datetime | None = None, batch_size: int = TICK_BATCH) -> int:
    """Fire every due schedule, set-based, in batches of `batch_size`; returns the number of jobs enqueued.

    `now` replaces the database clock (tests drive daylight-saving changes with it).
    """
    fired = 0
    # One "now" for every batch of this call: a schedule fired by batch 1 is not due again in batch 9 even when
    # the batches together take longer than its interval.
    if now is None:
        with transaction.atomic():
            now = _db_now()
    for _ in range(TICK_MAX_BATCHES):
        batch_fired, selected = _fire_batch(now=now, batch_size=batch_size)
        fired += batch_fired
        if selected < batch_size:
            break
    return fired


def _fire_batch(*, now: datetime | None, batch_size: int) -> tuple[int, int]:
    with transaction.atomic(durable=True):
        now = now or _db_now()
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

        # overlap=skip: the previous job must be terminal.
        skip_ids = {s.last_job_id for s in schedules if s.overlap == Overlap.SKIP and s.last_job_id}
        running = set(
            Job.objects.filter(id__in=skip_ids).exclude(state__in=TERMINAL_STATES).values_list("id", flat=True)
        ) if skip_ids else set()

        plan: list[tuple[Schedule, datetime]] = []
        new_next: dict[str, datetime] = {}
        for schedule in schedules:
            ticks, new_next[schedule.id] = _ticks_for(schedule, now)
            if schedule.overlap == Overlap.SKIP:
                if schedule.last_job_id in running:
                    continue
                ticks = ticks[:1]
            plan.extend((schedule, tick) for tick in ticks)

        won = _insert_ticks([(s.id, t) for s, t in plan], created_at=timezone.now())
        plan = [(s, t) for s, t in plan if _tick_key(s.id, t) in won]

        # Enqueue per workspace inside a savepoint: one workspace over its quota (or with a broken template)
        # loses its ticks (the tick rows stay, with no job), never another workspace's.
        by_workspace: dict[str, list[tuple[Schedule, datetime]]] = defaultdict(list)
        for schedule, tick in plan:
            by_workspace[schedule.workspace_id].append((schedule, tick))
        tick_jobs: list[ScheduleTick] = []
        events: list[PendingEvent] = []
        refused: list[Execution] = []
        enqueued = 0
        for items in by_workspace.values():
            workspace = items[0][0].workspace
            by_queue: dict[str, list[tuple[Schedule, datetime]]] = defaultdict(list)
            for schedule, tick in items:
                by_queue[schedule.queue_id].append((schedule, tick))
            try:
                with transaction.atomic():
                    results: list[tuple[Schedule, datetime, Job]] = []
                    for queue_items in by_queue.values():
                        queue = queue_items[0][0].queue
                        jobs = _enqueue(workspace=workspace, queue=queue,
                                        specs=[_job_spec(s, queue) for s, _t in queue_items])
                        results.extend((s, t, j) for (s, t), j in zip(queue_items, jobs, strict=True))
            except QuotaExceeded as exc:
                # API.md Executions: a run the monthly quota refused is visible as a `quota_exceeded` execution
                # of the schedule (no job), not a silent gap; the tick row stays without a job.
                logger.info("schedule ticks of workspace %s refused by the quota", workspace.id)
                refused.extend(_quota_refusal(schedule, tick, now, exc) for schedule, tick in items)
                continue
            except ApplicationError as exc:
                logger.warning("schedule ticks of workspace %s not enqueued: %s", workspace.id, exc.code)
                continue
            except Exception:
                logger.exception("schedule ticks of workspace %s failed", workspace.id)
                continue
            for schedule, tick, job in results:
                tick_jobs.append(ScheduleTick(id=won[_tick_key(schedule.id, tick)], job_id=job.id))
                events.append(_fired_event(schedule, queue_name=schedule.queue.name, job_id=job.id, tick_at=tick))
                schedule.last_run_at = now
                schedule.last_job_id = job.id
            enqueued += len(results)

        events_emit(events)
        if refused:
            Execution.objects.bulk_create(refused)
        for schedule in schedules:
            schedule.next_run_at = new_next[schedule.id]
        _write_back(schedules, tick_jobs)
        return enqueued, len(schedules)


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
    if connection.vendor != "postgresql":
        ScheduleTick.objects.bulk_update(tick_jobs, ["job_id"], batch_size=500)
        Schedule.objects.bulk_update(schedules, ["next_run_at", "last_run_at", "last_job_id"], batch_size=500)
        return
    with connection.cursor() as cursor:
        for start in range(0, len(schedules), 1000):
            chunk = schedules[start:start + 1000]
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
            ticks_chunk = tick_jobs[start:start + 1000]
            params = []
            for t in ticks_chunk:
                params += [t.id, t.job_id]
            cursor.execute(
                "UPDATE schedules_scheduletick AS t SET job_id = v.job_id FROM (VALUES "
                + ", ".join(["(%s::bigint, %s::varchar)"] * len(ticks_chunk))
                + ") AS v(id, job_id) WHERE t.id = v.id",
                params,
            )


def schedule_ticks_prune(*, now: datetime | None = None, max_batches: int = 10) -> int:
    """Delete tick rows older than TICK_RETENTION in bounded batches; returns how many went."""
    cutoff = (now or timezone.now()) - TICK_RETENTION
    deleted = 0
    for _ in range(max_batches):
        # Served by schedules_tick_tick_at.
        ids = list(ScheduleTick.objects.filter(tick_at__lt=cutoff).values_list("id", flat=True)[:TICK_PRUNE_BATCH])
        if not ids:
            break
        deleted += ScheduleTick.objects.filter(id__in=ids).delete()[0]
        if len(ids) < TICK_PRUNE_BATCH:
            break
    return deleted


def schedules_tick_window(*, window_ms: int) -> int:
    """Fire due schedules repeatedly for up to `window_ms`, sleeping until the next due time.

    Beat starts the ticker once a second; looping inside that second fires each tick within milliseconds of
    its time instead of up to a second late (PERF.md: lag p99 <= 1 s with 1,000 one-second schedules).
    """
    deadline = time.monotonic() + window_ms / 1000
    fired = schedules_fire_due()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return fired
        soonest = Schedule.objects.filter(paused=False).aggregate(at=Min("next_run_at"))["at"]
        if soonest is None:
            return fired
        wait = (soonest - timezone.now()).total_seconds()
        if wait > remaining:
            return fired
        time.sleep(min(max(wait, 0.005), remaining))
        fired += schedules_fire_due()
