"""Liveness marks of the periodic system tasks (sweeper, ticker): when each last ran, in the shared cache.

Readiness (/readyz) and /metrics read them; a missing or stale mark means the worker or the scheduler is down.
"""

from __future__ import annotations

import time

from django.core.cache import cache

_KEY = "spindle:liveness:{}"


def mark(name: str) -> None:
    """Record that the periodic task `name` ran now (cache failures are ignored: liveness is advisory)."""
    try:
        cache.set(_KEY.format(name), time.time(), timeout=None)
    except Exception:  # noqa: BLE001 - a cache outage must never fail the task that reports in
        pass


def last(name: str) -> float | None:
    """Unix time of the last `mark(name)`, or None if never marked or the cache is unreachable."""
    try:
        value = cache.get(_KEY.format(name))
    except Exception:  # noqa: BLE001
        return None
    return float(value) if value is not None else None
