"""The default plans moved to accounts.plans with the Plan model; bench/ still imports them from here."""

from __future__ import annotations

from accounts.plans import DEFAULT_MAX_WEBHOOKS, DEFAULT_PLANS, seed_default_plans

__all__ = ["DEFAULT_MAX_WEBHOOKS", "DEFAULT_PLANS", "seed_default_plans"]
