"""Billing's writes, by concern: `quota` (plan caps and the monthly job quota), `usage` (billing periods) and
`stripe` (subscriptions and the Stripe webhook). Retention is alerts/housekeeping.py: it prunes tables of
apps above billing.

This face keeps the names other apps import from `billing.services`.
"""

from __future__ import annotations

from .quota import (
    plan_check_count,
    plan_check_value,
    plan_slot_take,
    quota_consume,
    quota_consume_statement,
    quota_exceeded,
    quota_release,
    quota_used,
)
from .stripe import (
    HANDLED_EVENTS,
    PAID_PLANS,
    billing_checkout_create,
    billing_customer_ensure,
    billing_portal_create,
    plan_for_price,
    plan_price_id,
    stripe_webhook_handle,
)
from .usage import current_period, next_period, parse_period, period_start

__all__ = [
    "HANDLED_EVENTS",
    "PAID_PLANS",
    "billing_checkout_create",
    "billing_customer_ensure",
    "billing_portal_create",
    "current_period",
    "next_period",
    "parse_period",
    "period_start",
    "plan_check_count",
    "plan_slot_take",
    "plan_check_value",
    "plan_for_price",
    "plan_price_id",
    "quota_consume",
    "quota_consume_statement",
    "quota_exceeded",
    "quota_release",
    "quota_used",
    "stripe_webhook_handle",
]
