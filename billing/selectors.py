"""Reads for quota and billing: counters, never scans of jobs or executions. The usage report also reads the
queues' per-minute rollup, so it lives above billing, in queues.selectors.usage_report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


def billing_status(*, workspace: Workspace) -> dict[str, Any]:
    return {
        "billing_enabled": billing_enabled(),
        "plan": workspace.plan_id,
        "subscription_status": workspace.subscription_status or None,
        "has_customer": bool(workspace.stripe_customer_id),
        "has_subscription": bool(workspace.stripe_subscription_id),
    }
