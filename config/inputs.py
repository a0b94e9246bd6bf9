"""Bounds on what clients may send, shared by every app: datetimes, JSON strings and nesting.

Each rule guards a crash seen in the wild (issue 9): a `run_at` in year 0 after its UTC offset poisoned claim and
the sweeper for every tenant; PostgreSQL text and jsonb cannot store U+0000; a lone UTF-16 surrogate cannot be
encoded to UTF-8 (psycopg raises); deep nesting overflows the recursion limit when the response is rendered.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

# Accepted datetimes, in UTC. 1970 keeps clear of epoch arithmetic going negative; 9999 is datetime.max's year,
# and `MAX_DATETIME - 1 day` leaves room for "+ a lease" or "+ a step" without an OverflowError.
MIN_DATETIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DATETIME = datetime(9999, 12, 31, tzinfo=UTC)
DATETIME_RANGE_MESSAGE = (
    "Must be between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z (after the UTC offset)."
)

# Deepest JSON accepted in a request body (objects and arrays). Rendering adds a few levels around a payload
# (list envelope -> job -> payload), and Python's recursion limit is ~1000, so anything near that is unsafe.
MAX_JSON_DEPTH = 64

_STRING_RISK = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def datetime_in_range(value: datetime) -> bool:
    """Whether an aware datetime lies in the accepted range (checked in UTC, so the offset cannot dodge it)."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return False  # year 1 at +14:00 is year 0 in UTC: not representable at all
    return MIN_DATETIME <= utc <= MAX_DATETIME


def parse_client_datetime(raw: Any, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 string with an offset (or `Z`) inside the accepted range -> aware UTC datetime; else None.

    Without an offset the value is refused, unless `naive_is_utc` (query parameters, where `+` is awkward)."""
    if type(raw) is not str or len(raw) > 64:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        return None
    if value is not None and value.tzinfo is None and naive_is_utc:
        value = value.replace(tzinfo=UTC)
    if value is None or value.tzinfo is None or not datetime_in_range(value):
        return None
    return value.astimezone(UTC)


def datetime_plus_ms_in_range(base: datetime, milliseconds: int) -> bool:
    try:
        return datetime_in_range(base + timedelta(milliseconds=milliseconds))
    except OverflowError:
        return False


def bad_string(value: str) -> str | None:
    """Why a string cannot be stored (NUL or an unpaired surrogate), or None."""
    if "\x00" in value:
        return "Must not contain the NUL character (\\u0000)."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Must not contain an unpaired UTF-16 surrogate."
    return None


_CONTAINERS = (dict, list)


def _too_deep(raw: bytes, data: Any) -> bool:
    """Whether the parsed body nests more than MAX_JSON_DEPTH containers. Skipped when the raw text has too few
    brackets to be that deep; otherwise a walk over containers only (a 1,000-job batch costs about a millisecond)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    level = [data] if type(data) in _CONTAINERS else []
    for _ in range(MAX_JSON_DEPTH):
        if not level:
            return False
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) in _CONTAINERS
        ]
    return bool(level)


def json_body_problem(raw: bytes, data: Any) -> tuple[str, str, str] | None:
    """The first problem of a parsed JSON body: (kind, field path, message) with kind "depth" or "string".

    Cheap on the common body: depth is a walk over containers only, and the tree is only walked for strings when the
    raw bytes hold a NUL or surrogate escape (the only way either can appear in valid UTF-8 JSON).
    """
    if _too_deep(raw, data):
        return "depth", "", f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
    if _STRING_RISK.search(raw) is None:
        return None
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                problem = bad_string(key)
                if problem:
                    return "string", path or "non_field_errors", f"A key: {problem[0].lower()}{problem[1:]}"
                stack.append((item, f"{path}.{key}" if path else str(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))
        elif isinstance(value, str):
            problem = bad_string(value)
            if problem:
                return "string", path or "non_field_errors", problem
    return None
