"""Plan caps and the monthly job quota."""

from __future__ import annotations

from datetime import date, datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Workspace
from config.exceptions import PlanLimit, QuotaExceeded

from .models import UsageCounter


def current_period(now: datetime | None = None) -> date:
    now = now or timezone.now()
    return now.date().replace(day=1)


def quota_consume(*, workspace: Workspace, count: int, now: datetime | None = None) -> int:
    """Count `count` new jobs against this month's quota, or raise QuotaExceeded and count nothing.

    Must run inside the enqueue transaction (DESIGN.md invariant 2). Race-free: a conditional UPDATE takes the
    counter's row lock, so parallel enqueues serialise on it and never push `jobs_enqueued` past the limit.
    Returns the new usage.
    """
    if count <= 0:
        return 0
    period = current_period(now)
    limit = workspace.plan.jobs_per_month
    # The row must exist before the conditional UPDATE; ON CONFLICT keeps this race-free too.
    UsageCounter.objects.bulk_create(
        [UsageCounter(workspace=workspace, period=period, jobs_enqueued=0)], ignore_conflicts=True
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            where = "workspace_id = %s AND period = %s"
            params: list = [count, workspace.id, period]
            if limit is not None:
                where += " AND jobs_enqueued + %s <= %s"
                params += [count, limit]
            cursor.execute(
                f"UPDATE billing_usagecounter SET jobs_enqueued = jobs_enqueued + %s WHERE {where} RETURNING jobs_enqueued",
                params,
            )
            row = cursor.fetchone()
        if row is not None:
            return int(row[0])
    else:
        # SQLite: the connection already holds the write lock (BEGIN IMMEDIATE), so this cannot race.
        counters = UsageCounter.objects.filter(workspace=workspace, period=period)
        if limit is not None:
            counters = counters.filter(jobs_enqueued__lte=limit - count)
        if counters.update(jobs_enqueued=F("jobs_enqueued") + count):
            return UsageCounter.objects.get(workspace=workspace, period=period).jobs_enqueued
    used = UsageCounter.objects.filter(workspace=workspace, period=period).values_list("jobs_enqueued", flat=True).first()
    raise QuotaExceeded(details={"used": int(used or 0), "limit": limit, "plan": workspace.plan_id})


def quota_release(*, workspace: Workspace, count: int, now: datetime | None = None) -> None:
    """Give back quota that was counted for jobs that were then not created (e.g. idempotent replays)."""
    if count <= 0:
        return
    with transaction.atomic():
        UsageCounter.objects.filter(workspace=workspace, period=current_period(now)).update(
            jobs_enqueued=F("jobs_enqueued") - count
        )


def plan_check_count(*, workspace: Workspace, resource: str, current: int, adding: int = 1) -> None:
    """Raise PlanLimit if `current + adding` exceeds the plan's cap for `resource` (queues, schedules, alerts)."""
    limit = getattr(workspace.plan, f"max_{resource}")
    if limit is not None and current + adding > limit:
        raise PlanLimit(
            f"The {workspace.plan.name} plan allows {limit} {resource}.",
            details={"limit": limit, "plan": workspace.plan_id, "resource": resource},
        )


def plan_check_value(*, workspace: Workspace, field: str, value: int | None) -> None:
    """Raise PlanLimit if a per-object value (max_attempts, timeout_ms) is above the plan's cap."""
    if value is None:
        return
    cap_attr = {"max_attempts": "max_attempts", "timeout_ms": "max_timeout_ms"}[field]
    limit = getattr(workspace.plan, cap_attr)
    if limit is not None and value > limit:
        raise PlanLimit(
            f"The {workspace.plan.name} plan allows at most {limit} for {field}.",
            details={"limit": limit, "plan": workspace.plan_id, "field": field},
        )
