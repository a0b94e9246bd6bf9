"""Retry delays: exponential (or fixed) backoff with jitter and a cap (DESIGN.md invariant 5)."""

from __future__ import annotations

import random

from django.conf import settings

from queues.models import DEFAULT_RETRY_POLICY


def compute_backoff_ms(policy: dict | None, attempt: int) -> int:
    """Delay before the retry that follows `attempt` (1-based), per the retry policy, scaled for tests."""
    policy = {**DEFAULT_RETRY_POLICY, **(policy or {})}
    initial = max(0, int(policy.get("initial_delay_ms") or 0))
    cap = int(policy.get("max_delay_ms") or 0) or None
    if policy.get("backoff") == "fixed":
        delay = float(initial)
    else:
        multiplier = float(policy.get("multiplier") or 2)
        # Bound the exponent: 2**1000 overflows a float long before any cap applies.
        delay = initial * multiplier ** min(max(attempt - 1, 0), 64)
    if cap is not None:
        delay = min(delay, cap)
    jitter = policy.get("jitter")
    if jitter == "full":
        delay = random.uniform(0, delay)
    elif jitter:  # True or "equal": keep at least half the delay so retries never stampede at once
        delay = delay / 2 + random.uniform(0, delay / 2)
    return max(0, int(delay * settings.SPINDLE_BACKOFF_SCALE))
