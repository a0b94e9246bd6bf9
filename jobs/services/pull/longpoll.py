"""The long-poll budget.

A long-poll holds a web thread (gunicorn gthread) for up to 20 s. Without a bound, a few workers polling empty
queues pin every thread and /v1/health times out. Two budgets, checked only when a claim found nothing and the
caller asked to wait: at most SPINDLE_LONGPOLL_MAX_PER_PROCESS waiting claims per web process (default 4, half
of the Procfile's 8 threads), and at most SPINDLE_LONGPOLL_MAX_PER_WORKSPACE per workspace across all processes
(slots in the shared cache, so one tenant cannot take the whole process budget). Over budget the claim answers
at once with an empty `data` and the header `Spindle-Long-Poll: refused`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

_budget_lock = threading.Lock()
_budget: tuple[int, threading.BoundedSemaphore] | None = None
LONG_POLL_SLOT_KEY = "spindle:longpoll:{workspace_id}:{slot}"


def _process_budget() -> threading.BoundedSemaphore:
    global _budget
    size = max(1, int(getattr(settings, "SPINDLE_LONGPOLL_MAX_PER_PROCESS", 4)))
    with _budget_lock:
        if _budget is None or _budget[0] != size:
            _budget = (size, threading.BoundedSemaphore(size))
        return _budget[1]


@contextmanager
def long_poll_slot(*, workspace_id: str, wait_ms: int) -> Iterator[bool]:
    """Yields True while this request holds a process slot and a workspace slot, False when over budget."""
    semaphore = _process_budget()
    if not semaphore.acquire(blocking=False):
        yield False
        return
    held: str | None = None
    try:
        # Each slot key expires a little after the longest wait, so a process killed mid-poll frees it.
        ttl_s = int(wait_ms / 1000) + 5
        token = secrets.token_hex(8)
        for slot in range(max(1, int(getattr(settings, "SPINDLE_LONGPOLL_MAX_PER_WORKSPACE", 2)))):
            key = LONG_POLL_SLOT_KEY.format(workspace_id=workspace_id, slot=slot)
            if cache.add(key, token, timeout=ttl_s):
                held = key
                break
        yield held is not None
    finally:
        if held is not None:
            cache.delete(held)
        semaphore.release()
