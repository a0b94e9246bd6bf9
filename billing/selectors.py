"""Reads for quota, usage and billing: counters and rollups, never scans of jobs or executions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Workspace

from .services import next_period, period_start, quota_used
from .stripe_client import billing_enabled


def quota_summary(*, workspace: Workspace, now: datetime | None = None) -> dict[str, Any]:
    from .services import current_period

    period = current_period(now)
    return {
        "used": quota_used(workspace=workspace, period=period),
        "limit": workspace.plan.jobs_per_month,
        "resets_at": period_start(next_period(period)),
    }


def usage_report(*, workspace: Workspace, period: date, now: datetime | None = None) -> dict[str, Any]:
    """A month of usage from UsageCounter and the QueueMinuteStat rollup (index jobs_stat_ws_minute)."""
    from jobs.models import QueueMinuteStat

    now = now or timezone.now()
    start = period_start(period)
    end = period_start(next_period(period))
    stats = QueueMinuteStat.objects.filter(workspace=workspace, minute__gte=start, minute__lt=end)
    sums = {
        "enqueued": Sum("enqueued"),
        "success": Sum("completed"),
        "failed": Sum("failed"),
        "timeout": Sum("timeout"),
    }

    def _row(values: dict[str, Any]) -> dict[str, int]:
        row = {k: int(values.get(k) or 0) for k in sums}
        row["total"] = row["success"] + row["failed"] + row["timeout"]
        return row

    totals = _row(stats.aggregate(**sums))
    by_queue = [
        {"queue": r["queue__name"], **_row(r)}
        for r in stats.values("queue__name").annotate(**sums).order_by("queue__name")
    ]
    per_day = {
        r["day"]: _row(r) for r in stats.annotate(day=TruncDate("minute")).values("day").annotate(**sums)
    }
    # Every day of the month that has begun, zeros included, so charts need no gap filling.
    last_day = min(end, now + timedelta(days=1)).date()
    by_day = []
    day = start.date()
    while day < last_day:
        by_day.append({"date": day.isoformat(), **per_day.get(day, _row({}))})
        day += timedelta(days=1)
    return {
        "period": {"start": start, "end": end},
        "jobs_enqueued": quota_used(workspace=workspace, period=period),
        "executions": {k: totals[k] for k in ("total", "success", "failed", "timeout")},
        "by_queue": by_queue,
        "by_day": by_day,
    }


def billing_status(*, workspace: Workspace) -> dict[str, Any]:
    return {
        "billing_enabled": billing_enabled(),
        "plan": workspace.plan_id,
        "subscription_status": workspace.subscription_status or None,
        "has_customer": bool(workspace.stripe_customer_id),
        "has_subscription": bool(workspace.stripe_subscription_id),
    }
