"""The schedule ticker: beat starts it every second (settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from config import liveness

from . import services

PRUNE_LOCK_KEY = "spindle:schedules:prune"


@shared_task(name="schedules.tick", ignore_result=True)
def tick(window_ms: int | None = None) -> int:
    """Fire every due schedule. Idempotent: tick rows make a duplicate or retried run enqueue nothing twice."""
    if window_ms is None:
        window_ms = getattr(settings, "SPINDLE_SCHEDULE_TICK_WINDOW_MS", 900)
    fired = services.schedules_tick_window(window_ms=window_ms)
    # /readyz: a recent tick shows the scheduler and a worker alive; a tick that raised leaves the mark to age.
    liveness.mark("ticker")
    # Prune old tick rows at most once a minute, whichever ticker gets there first.
    if cache.add(PRUNE_LOCK_KEY, 1, timeout=60):
        services.schedule_ticks_prune()
    return fired
