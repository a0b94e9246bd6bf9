"""How Spooled's words map to Spindle's, both ways (ROADMAP "Spooled states and counts").

Spooled's `failed` is a job that failed an attempt and waits for its retry: in Spindle that is a `delayed` job
with at least one attempt behind it. Spooled's `deadletter` is Spindle's `failed` (its dead-letter queue).
"""

from __future__ import annotations

TO_SPINDLE: dict[str, str] = {
    "pending": "waiting",
    "scheduled": "delayed",
    "processing": "active",
    "completed": "completed",
    "failed": "delayed",
    "deadletter": "failed",
    "cancelled": "cancelled",
}

FROM_SPINDLE: dict[str, str] = {
    "waiting": "pending",
    "delayed": "scheduled",
    "active": "processing",
    "completed": "completed",
    "failed": "deadletter",
    "cancelled": "cancelled",
}


def spooled_state(state: str, attempts: int) -> str:
    """A Spindle job's state in Spooled's words: a delayed job with an attempt behind it is a `failed` one."""
    if state == "delayed" and attempts > 0:
        return "failed"
    return FROM_SPINDLE.get(state, state)


def retry_count(attempts: int) -> int:
    return max(attempts - 1, 0)


def max_retries(max_attempts: int) -> int:
    return max(max_attempts - 1, 0)
