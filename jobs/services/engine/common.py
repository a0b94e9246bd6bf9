"""What every part of the engine shares: its limits, the Outcome record, the database clock, transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.db import transaction

from config import db
from jobs.models import TERMINAL_STATES

RESPONSE_BODY_MAX = 64 * 1024
MAX_FREE_DEFERRALS = 10
# The group query looks at this many ready jobs at most, so a huge backlog does not make each claim scan it all.
GROUP_SCAN_WINDOW = 5000
SWEEP_BATCH = 5000
MAX_CLAIM = 10000
# A target's Retry-After defers a job this long at most (delivery.MAX_RETRY_AFTER_S for push).
MAX_DEFERRAL_S = 24 * 3600
# The latest instant the engine computes: PostgreSQL and Python both hold it, with room for any UTC offset.
DATETIME_MAX = datetime(9999, 12, 30, tzinfo=UTC)

OutcomeKind = Literal["success", "failure", "timeout", "deferred", "gone", "cancelled"]
TERMINAL = [s.value for s in TERMINAL_STATES]


@dataclass
class Outcome:
    job_id: str
    lease_token: str
    kind: OutcomeKind
    result: Any = None
    error: dict | None = None
    http_status: int | None = None
    response_body: str | None = None
    duration_ms: int | None = None
    retry: bool = True
    retry_after_s: float | None = None


def later(now: datetime, *, ms: float) -> datetime:
    """`now` plus `ms`, never past DATETIME_MAX: a timedelta near datetime.max raises OverflowError, which in an
    outcome batch or the sweeper would fail every job of it (issue 9: one bad row must not stop the others)."""
    try:
        return min(now + timedelta(milliseconds=max(0.0, float(ms))), DATETIME_MAX)
    except (OverflowError, ValueError):
        return DATETIME_MAX


def db_now() -> datetime:
    """The database's clock: every "due" and "expired" decision uses it, never the caller's clock."""
    return db.backend().now()


def atomic() -> transaction.Atomic:
    """The outermost engine transaction is durable so on-commit hints really fire after commit; when a caller
    already holds a transaction (e.g. a REST view in ATOMIC_REQUESTS style), join it."""
    conn = transaction.get_connection()
    return transaction.atomic(durable=not conn.in_atomic_block)
