"""Fire times: cron in an IANA timezone with API.md's daylight-saving rules, and fixed intervals.

croniter alone is not enough: given an aware start it fires a repeated autumn time twice (once per offset) and
maps a skipped spring time to the instant "wall time + old offset". So croniter only walks *wall-clock* (naive)
candidates, and `_instant` turns each wall time into one instant:
- a time skipped by spring-forward fires at the first instant after the gap (02:30 -> 03:00 local);
- a time repeated by fall-back fires once, at its first occurrence (fold=0).
Both mappings are monotone, so the first candidate whose instant is after `after` is the next fire time, and
several wall times that map to the same instant (e.g. 02:00 and 02:30 inside one gap) fire once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# Walking more candidates than this without finding one after `after` means the expression never fires
# (e.g. "0 0 30 2 *"); croniter itself gives up on such expressions too.
_MAX_CANDIDATES = 10_000


def normalize_cron(expr: str) -> str:
    """The 5-field form of `expr` (aliases expanded, whitespace collapsed), or ValueError."""
    if not isinstance(expr, str):
        raise ValueError("Expected a string.")
    text = " ".join(expr.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            "Expected 5 fields (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly/@monthly."
        )
    if not croniter.is_valid(text):
        raise ValueError("Not a valid cron expression.")
    # An expression that can never match (Feb 30) is refused at creation, not discovered by the ticker.
    try:
        cron_next(text, "UTC", after=datetime(2026, 1, 1, tzinfo=UTC))
    except Exception:  # noqa: BLE001 - croniter raises several types for impossible dates
        raise ValueError("This cron expression never fires.") from None
    return text


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_timezone(name: str) -> str:
    if not isinstance(name, str) or name not in _known_zones() and name != "UTC":
        raise ValueError("Unknown timezone: expected an IANA name such as Europe/Berlin.")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("Unknown timezone: expected an IANA name such as Europe/Berlin.") from None
    return name


@lru_cache(maxsize=512)
def _zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the naive local time `wall` fires (see module docstring)."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    # The offsets differ: `wall` is either repeated (fall-back) or skipped (spring-forward).
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)  # repeated: first occurrence only
    # Skipped: the gap ends at the transition, which lies between the two candidate instants.
    low = min(first.astimezone(UTC), second.astimezone(UTC))
    high = max(first.astimezone(UTC), second.astimezone(UTC))
    offset_low = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).utcoffset() == offset_low:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def _walk_start(after: datetime, tz: ZoneInfo) -> datetime:
    """The naive wall time to start croniter from: early enough that no candidate after `after` is skipped."""
    local = after.astimezone(tz)
    # Near a transition a wall time just before `local` can map to an instant after `after` (a skipped time
    # that fires at the gap's end); start earlier by the size of the shift.
    shift = abs(
        (tz.utcoffset(local.replace(tzinfo=None) + timedelta(days=1)) or timedelta())
        - (tz.utcoffset(local.replace(tzinfo=None) - timedelta(days=1)) or timedelta())
    )
    return local.replace(tzinfo=None) - shift - timedelta(seconds=1)


def cron_next(expr: str, tz_name: str | None, *, after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware), as an aware UTC datetime."""
    tz = _zone(tz_name)
    walker = croniter(expr, _walk_start(after, tz))
    for _ in range(_MAX_CANDIDATES):
        wall = walker.get_next(datetime)
        instant = _instant(wall, tz)
        if instant > after:
            return instant
    raise ValueError("This cron expression never fires.")


def interval_next(*, anchor: datetime, interval_ms: int, after: datetime) -> datetime:
    """The first of `anchor + k * interval` (k >= 1) strictly after `after`: ticks stay on a fixed grid."""
    step = timedelta(milliseconds=interval_ms)
    return anchor + step * max(1, (after - anchor) // step + 1)


def next_fire(
    *,
    cron: str | None,
    interval_ms: int | None,
    tz_name: str | None,
    after: datetime,
    anchor: datetime | None = None,
) -> datetime:
    """The next fire time strictly after `after` for a cron or an interval schedule."""
    if cron:
        return cron_next(cron, tz_name, after=after)
    assert interval_ms is not None
    return interval_next(anchor=anchor or after, interval_ms=interval_ms, after=after)


def upcoming(
    *,
    cron: str | None,
    interval_ms: int | None,
    tz_name: str | None,
    after: datetime,
    count: int,
    first: datetime | None = None,
) -> list[datetime]:
    """The next `count` fire times after `after` (starting at `first` when the schedule already has one)."""
    times: list[datetime] = []
    current = first if first is not None and first > after else None
    if current is None:
        current = next_fire(cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=after)
    while len(times) < count:
        times.append(current)
        current = next_fire(
            cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=current, anchor=current
        )
    return times


def due_ticks(
    *,
    cron: str | None,
    interval_ms: int | None,
    tz_name: str | None,
    first: datetime,
    now: datetime,
    grace: timedelta,
) -> tuple[list[datetime], datetime]:
    """(tick times to fire, the next fire time after now) of a schedule due at `first` <= now.

    A tick late by less than `grace` (a ticker that ran a little late) still fires on its own, so a one-second
    schedule has no gaps; a backlog older than that is downtime and fires once for all missed ticks, at `first`.
    """
    ticks = [first]
    nxt = next_fire(cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=first, anchor=first)
    if first >= now - grace:
        while nxt <= now:
            ticks.append(nxt)
            nxt = next_fire(cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=nxt, anchor=nxt)
    elif nxt <= now:
        nxt = next_fire(cron=cron, interval_ms=interval_ms, tz_name=tz_name, after=now, anchor=first)
    return ticks, nxt
