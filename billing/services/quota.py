"""Plan caps and the monthly job quota (DESIGN.md invariant 2: counted inside the enqueue transaction)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Model

from accounts.models import Workspace
from config.db import backend
from config.exceptions import PlanLimit, QuotaExceeded

from ..models import UsageCounter
from .usage import current_period

# --- quota ---------------------------------------------------------------------------------------


def quota_consume(*, workspace: Workspace, count: int, now: datetime | None = None) -> int:
    """Count `count` new jobs against this month's quota, or raise QuotaExceeded and count nothing.

    Must run inside the enqueue transaction (DESIGN.md invariant 2): a rollback gives the quota back. Race-free:
    on PostgreSQL one upsert whose ON CONFLICT DO UPDATE takes the counter's row lock and re-checks the limit on
    the latest row version, so parallel enqueues serialise on the row and never push `jobs_enqueued` past the
    limit. Returns the new usage.
    """
    if count <= 0:
        return 0
    if backend().SET_BASED:
        sql, params = quota_consume_statement(workspace=workspace, count=count, now=now)
        with connection.cursor() as cursor:
            # One round trip on the enqueue hot path; the unique (workspace, period) constraint is the arbiter.
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            return int(row[0])
        raise quota_exceeded(workspace=workspace, now=now)
    period = current_period(now)
    limit = workspace.plan.jobs_per_month
    if limit is not None and count > limit:
        raise quota_exceeded(workspace=workspace, now=now)
    # SQLite: the connection already holds the write lock (BEGIN IMMEDIATE), so this cannot race.
    UsageCounter.objects.bulk_create(
        [UsageCounter(workspace=workspace, period=period, jobs_enqueued=0)], ignore_conflicts=True
    )
    counters = UsageCounter.objects.filter(workspace=workspace, period=period)
    if limit is not None:
        counters = counters.filter(jobs_enqueued__lte=limit - count)
    if counters.update(jobs_enqueued=F("jobs_enqueued") + count):
        return UsageCounter.objects.get(workspace=workspace, period=period).jobs_enqueued
    raise quota_exceeded(workspace=workspace, now=now)


def quota_consume_statement(
    *, workspace: Workspace, count: int, now: datetime | None = None
) -> tuple[str, list[Any]]:
    """PostgreSQL: quota_consume's conditional upsert as (sql, params), for a caller that sends it with other
    statements of its transaction in one round trip. It returns one row (the new usage), or none when the
    quota is short: the caller must then raise `quota_exceeded(...)` so its transaction rolls back.

    Sent last before COMMIT, the upsert holds the counter's row lock (which serialises a workspace's enqueues)
    for as short a time as possible.
    """
    period = current_period(now)
    limit = workspace.plan.jobs_per_month
    over = limit is not None and count > limit  # more than the whole month's quota: matches no row
    params: list[Any] = [workspace.id, period, count, count]
    condition = ""
    if over:
        condition = " WHERE false"
    elif limit is not None:
        condition = " WHERE billing_usagecounter.jobs_enqueued + %s <= %s"
        params += [count, limit]
    sql = (
        "INSERT INTO billing_usagecounter (workspace_id, period, jobs_enqueued)"
        + (" SELECT %s, %s, %s WHERE false" if over else " VALUES (%s, %s, %s)")
        + " ON CONFLICT (workspace_id, period) DO UPDATE"
        " SET jobs_enqueued = billing_usagecounter.jobs_enqueued + %s"
        f"{condition} RETURNING jobs_enqueued"
    )
    return sql, params


def quota_exceeded(*, workspace: Workspace, now: datetime | None = None) -> QuotaExceeded:
    """The QuotaExceeded error for this workspace's current period (with its usage and limit)."""
    period = current_period(now)
    return QuotaExceeded(
        details={
            "used": quota_used(workspace=workspace, period=period),
            "limit": workspace.plan.jobs_per_month,
            "plan": workspace.plan_id,
        }
    )


def quota_used(*, workspace: Workspace, period: date | None = None) -> int:
    period = period or current_period()
    used = (
        UsageCounter.objects.filter(workspace=workspace, period=period)
        .values_list("jobs_enqueued", flat=True)
        .first()
    )
    return int(used or 0)


def quota_release(*, workspace: Workspace, count: int, now: datetime | None = None) -> None:
    """Give back quota that was counted for jobs that were then not created (e.g. idempotent replays)."""
    if count <= 0:
        return
    with transaction.atomic():
        UsageCounter.objects.filter(
            workspace=workspace, period=current_period(now), jobs_enqueued__gte=count
        ).update(jobs_enqueued=F("jobs_enqueued") - count)


# --- plan caps -----------------------------------------------------------------------------------


def plan_check_count(*, workspace: Workspace, resource: str, current: int, adding: int = 1) -> None:
    """Raise PlanLimit if `current + adding` exceeds the plan's cap for `resource` (queues, schedules, alerts).

    Callers count `current` inside the creating transaction after locking the workspace row
    (`Workspace.objects.select_for_update()`), so two parallel creates cannot both pass the last slot.
    """
    limit = getattr(workspace.plan, f"max_{resource}")
    if limit is not None and current + adding > limit:
        raise PlanLimit(
            f"The {workspace.plan.name} plan allows {limit} {resource}.",
            details={"limit": limit, "plan": workspace.plan_id, "resource": resource},
        )


def plan_slot_take(*, workspace: Workspace, resource: str, model: type[Model]) -> None:
    """Before creating one more `model` row (a queue, schedule, alert or webhook): raise PlanLimit if the plan's
    cap for `resource` is reached.

    Call it inside the creating transaction: it locks the workspace row first, so two parallel creates cannot
    both take the plan's last slot.
    """
    Workspace.objects.select_for_update().filter(pk=workspace.pk).exists()
    plan_check_count(
        workspace=workspace, resource=resource, current=model.objects.filter(workspace=workspace).count()
    )


_VALUE_CAPS = {
    "max_attempts": "max_attempts",
    "timeout_ms": "max_timeout_ms",
    "max_timeout_ms": "max_timeout_ms",
}


def plan_check_value(*, workspace: Workspace, field: str, value: int | None) -> None:
    """Raise PlanLimit if a per-object value (max_attempts, timeout_ms) is above the plan's cap."""
    if value is None:
        return
    limit = getattr(workspace.plan, _VALUE_CAPS[field])
    if limit is not None and value > limit:
        raise PlanLimit(
            f"The {workspace.plan.name} plan allows at most {limit} for {field}.",
            details={"limit": limit, "plan": workspace.plan_id, "field": field},
        )
