"""Billing periods (calendar months, UTC) and the `period` query parameter of /v1/usage."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

from config.exceptions import BadRequest


def current_period(now: datetime | None = None) -> date:
    now = now or timezone.now()
    return now.astimezone(UTC).date().replace(day=1)


def next_period(period: date) -> date:
    return (period.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_start(period: date) -> datetime:
    return datetime(period.year, period.month, 1, tzinfo=UTC)


def parse_period(raw: str | None, *, now: datetime | None = None) -> date:
    """`YYYY-MM` (default: the current month) -> the month's first day; anything else is 400 BAD_REQUEST."""
    if raw in (None, ""):
        return current_period(now)
    try:
        if len(raw) != 7:
            raise ValueError
        parsed = datetime.strptime(raw, "%Y-%m").date()
    except ValueError:
        raise BadRequest(
            "`period` must be a month as YYYY-MM.", details={"period": ["Expected YYYY-MM."]}
        ) from None
    if not 2000 <= parsed.year <= 9998:  # 9999-12 has no next month to end the period with (OverflowError)
        raise BadRequest("`period` must be a month as YYYY-MM.", details={"period": ["Expected YYYY-MM."]})
    return parsed
