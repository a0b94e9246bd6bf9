"""Reads the Spooled surface composes from Spindle's own selectors: the organization's usage against its plan
(`GET /api/v1/organizations/usage`, the SDK's `UsageInfo`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import Plan, Workspace
from accounts.selectors import api_keys_active
from alerts.selectors import webhook_list
from billing.selectors import quota_summary
from config.ratelimit import WINDOW_S
from jobs.models import JobState, Worker
from jobs.selectors import workspace_state_counts
from queues.selectors import queue_list
from schedules.selectors import schedule_list

# The SDK's PlanLimits types the rate limit and retention as required integers (Spooled's are u32, and every
# Spooled tier has one); Spindle's null there means "no limit", sent as u32's largest value, the nearest an
# integer comes to "none" (0 would read as "nothing allowed").
NO_LIMIT = 2**32 - 1
# A resource at this share of its cap or more is warned about; at its cap, critically.
WARN_AT_PERCENT = 80
# What Spooled counts against max_active_jobs: pending, scheduled and processing jobs.
ACTIVE_STATES = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)


def organization_usage(*, workspace: Workspace) -> dict[str, Any]:
    """The workspace's plan limits and what counts against each, in the SDK's `UsageInfo` shape.

    Spooled caps jobs per day, Spindle per calendar month (UTC): `jobs_today` / `max_jobs_per_day` carry the
    month's quota as /v1/status reports it (`quota_summary`), so `limit - current` is the headroom before
    QUOTA_EXCEEDED; the extras `limits.jobs_window` and `usage.jobs_today.resets_at` say so (the SDK ignores
    extra keys). Spindle caps neither active jobs, workers nor API keys (null limits), and has no workflows
    (Spooled's "disabled": a cap of 0).
    """
    plan = workspace.plan
    quota = quota_summary(workspace=workspace)
    states, _per_queue = workspace_state_counts(workspace=workspace)
    # Spooled's resource -> (its field in `limits`, Spindle's cap (None: none), what counts against it).
    resources: dict[str, tuple[str, int | None, int]] = {
        "jobs_today": ("max_jobs_per_day", quota["limit"], quota["used"]),
        "active_jobs": ("max_active_jobs", None, sum(states[s] for s in ACTIVE_STATES)),
        "queues": ("max_queues", plan.max_queues, queue_list(workspace=workspace).count()),
        "workers": ("max_workers", None, Worker.objects.filter(workspace=workspace).count()),
        "api_keys": ("max_api_keys", None, api_keys_active(workspace=workspace).count()),
        "schedules": ("max_schedules", plan.max_schedules, schedule_list(workspace=workspace).count()),
        "workflows": ("max_workflows", 0, 0),
        "webhooks": ("max_webhooks", plan.max_webhooks, webhook_list(workspace=workspace).count()),
    }
    usage = {name: _item(current, limit) for name, (_field, limit, current) in resources.items()}
    usage["jobs_today"]["resets_at"] = quota["resets_at"]
    limits = {
        "tier": plan.code,
        "display_name": plan.name,
        **{field: limit for field, limit, _current in resources.values()},
        "jobs_window": "month",
        **_plan_rates(plan),
    }
    warnings = [w for name, item in usage.items() if (w := _warning(name, item)) is not None]
    return {
        "plan": plan.code,
        "plan_display_name": plan.name,
        "limits": limits,
        "usage": usage,
        "warnings": warnings,
    }


def _plan_rates(plan: Plan) -> dict[str, int]:
    """The limits the SDK requires as integers: payload size, request rate, retention."""
    rpm = plan.requests_per_minute
    retention = NO_LIMIT if plan.retention_days is None else plan.retention_days
    return {
        "max_payload_size_bytes": settings.SPINDLE_MAX_PAYLOAD_BYTES,
        # Counted per workspace in fixed windows of WINDOW_S seconds: the whole window's budget may arrive at once.
        "rate_limit_requests_per_second": NO_LIMIT if rpm is None else max(1, round(rpm / WINDOW_S)),
        "rate_limit_burst": NO_LIMIT if rpm is None else rpm,
        # Finished jobs, their executions and events are all kept the plan's retention_days (alerts.housekeeping).
        "job_retention_days": retention,
        "history_retention_days": retention,
    }


def _item(current: int, limit: int | None) -> dict[str, Any]:
    return {
        "current": current,
        "limit": limit,
        "percentage": round(100 * current / limit, 2) if limit else None,
        "is_disabled": limit == 0,
    }


_LABELS = {"jobs_today": "Jobs this month", "active_jobs": "Active jobs", "api_keys": "API keys"}


def _warning(resource: str, item: dict[str, Any]) -> dict[str, str] | None:
    percentage = item["percentage"]
    if percentage is None or percentage < WARN_AT_PERCENT:
        return None
    label = _LABELS.get(resource, resource.capitalize())
    if item["current"] >= item["limit"]:
        message, severity = f"{label}: the limit of {item['limit']} is reached.", "critical"
    else:
        message, severity = f"{label}: {item['current']} of {item['limit']} ({percentage:.0f}%).", "warning"
    return {"resource": resource, "message": message, "severity": severity}
