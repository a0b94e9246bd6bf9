"""The four plans of API.md (seeded by billing migrations 0002 and 0004; staff edit them in the admin)."""

from __future__ import annotations

DEFAULT_PLANS = [
    # code, name, rpm, jobs/month, retention days, queues, schedules, alerts, max attempts, max timeout ms
    ("free", "Free", 60, 10_000, 7, 5, 5, 1, 4, 30_000),
    ("pro", "Pro", 300, 100_000, 30, 50, 100, 10, 10, 120_000),
    ("team", "Team", 1_000, 1_000_000, 90, 500, 1_000, 50, 20, 300_000),
    ("enterprise", "Enterprise", None, None, None, None, None, None, None, None),
]

# Webhook subscriptions per workspace (None: unlimited); every subscription multiplies the fan-out work.
DEFAULT_MAX_WEBHOOKS: dict[str, int | None] = {"free": 2, "pro": 10, "team": 50, "enterprise": None}


def seed_default_plans(plan_model) -> None:
    """Create the default plans that are missing (existing rows, possibly edited by staff, are kept)."""
    for order, (code, name, rpm, jobs, retention, queues, schedules, alerts, attempts, timeout) in enumerate(
        DEFAULT_PLANS
    ):
        plan_model.objects.get_or_create(
            code=code,
            defaults=dict(
                name=name,
                requests_per_minute=rpm,
                jobs_per_month=jobs,
                retention_days=retention,
                max_queues=queues,
                max_schedules=schedules,
                max_alerts=alerts,
                max_webhooks=DEFAULT_MAX_WEBHOOKS.get(code),
                max_attempts=attempts,
                max_timeout_ms=timeout,
                sort_order=order,
            ),
        )
