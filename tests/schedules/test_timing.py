"""Daylight saving: a daily schedule neither skips nor doubles across the 2026 changes (API.md rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules.timing import cron_next, interval_next, normalize_cron, upcoming

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def local(times, tz):
    return [t.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M%z") for t in times]


def at(tz, *args):
    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)


@pytest.mark.parametrize(
    ("tz", "spring_day", "expected"),
    [
        (BERLIN, 29, ["03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"]),
        (NEW_YORK, 8, ["03-07 02:30-0500", "03-08 03:00-0400", "03-09 02:30-0400"]),
    ],
)
def test_spring_forward_fires_at_end_of_gap(tz, spring_day, expected):
    times = upcoming(
        cron="30 2 * * *", interval_ms=None, tz_name=tz, after=at(tz, 2026, 3, spring_day - 2, 12), count=3
    )
    assert local(times, tz) == expected
    # 24 h apart in wall-clock terms except across the gap (23 h minus the skipped half hour).
    assert times[1] - times[0] == timedelta(hours=23, minutes=30)


@pytest.mark.parametrize(
    ("tz", "autumn_day", "expected"),
    [
        (BERLIN, 25, ["10-24 02:30+0200", "10-25 02:30+0200", "10-26 02:30+0100"]),
        (NEW_YORK, 1, ["10-31 01:30-0400", "11-01 01:30-0400", "11-02 01:30-0500"]),
    ],
)
def test_fall_back_fires_once_at_first_occurrence(tz, autumn_day, expected):
    hour = 2 if tz == BERLIN else 1  # the repeated hour
    month = 10 if tz == BERLIN else 11
    start = at(tz, 2026, month, autumn_day, 0) - timedelta(days=1, hours=12)
    times = upcoming(cron=f"30 {hour} * * *", interval_ms=None, tz_name=tz, after=start, count=3)
    assert local(times, tz) == expected
    assert len(set(times)) == 3


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
def test_daily_over_a_whole_year_is_one_per_day(tz):
    times = upcoming(cron="@daily", interval_ms=None, tz_name=tz, after=at(tz, 2025, 12, 31, 12), count=365)
    days = [t.astimezone(ZoneInfo(tz)).date() for t in times]
    assert len(set(days)) == 365
    assert all(t.astimezone(ZoneInfo(tz)).hour == 0 for t in times)


def test_hourly_across_changes_skips_gap_and_repeat():
    spring = upcoming(
        cron="0 * * * *", interval_ms=None, tz_name=BERLIN, after=at(BERLIN, 2026, 3, 29, 0, 30), count=3
    )
    assert local(spring, BERLIN) == ["03-29 01:00+0100", "03-29 03:00+0200", "03-29 04:00+0200"]
    autumn = upcoming(
        cron="0 * * * *", interval_ms=None, tz_name=BERLIN, after=at(BERLIN, 2026, 10, 25, 1, 30), count=3
    )
    assert local(autumn, BERLIN) == ["10-25 02:00+0200", "10-25 03:00+0100", "10-25 04:00+0100"]


def test_every_15_minutes_inside_gap_fire_once():
    times = upcoming(
        cron="*/15 2 * * *", interval_ms=None, tz_name=BERLIN, after=at(BERLIN, 2026, 3, 29, 0), count=2
    )
    assert local(times, BERLIN) == ["03-29 03:00+0200", "03-30 02:00+0200"]


def test_cron_next_is_strictly_after():
    t = at(BERLIN, 2026, 3, 29, 3, 0)  # the gap-end fire time itself
    assert cron_next("30 2 * * *", BERLIN, after=t) == at(BERLIN, 2026, 3, 30, 2, 30)
    assert cron_next("30 2 * * *", BERLIN, after=t - timedelta(seconds=1)) == t


def test_interval_grid():
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    assert interval_next(anchor=anchor, interval_ms=1000, after=anchor) == anchor + timedelta(seconds=1)
    assert interval_next(
        anchor=anchor, interval_ms=1000, after=anchor + timedelta(seconds=5.5)
    ) == anchor + timedelta(seconds=6)
    assert interval_next(
        anchor=anchor, interval_ms=1000, after=anchor + timedelta(seconds=6)
    ) == anchor + timedelta(seconds=7)


@pytest.mark.parametrize("expr", ["", "* * *", "60 * * * *", "@never", "0 0 31 2 *", "a b c d e"])
def test_normalize_refuses(expr):
    with pytest.raises(ValueError):
        normalize_cron(expr)


def test_normalize_aliases():
    assert normalize_cron(" @Daily ") == "0 0 * * *"
    assert normalize_cron("*/5   *  * * 1-5") == "*/5 * * * 1-5"
