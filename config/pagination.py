"""Keyset pagination on the time-ordered id: `{"data": [...], "next_cursor": "opaque" | null}`."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import QuerySet

from .exceptions import BadRequest

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def parse_limit(params: Any, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    raw = params.get("limit")
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(
            "`limit` must be an integer.", details={"limit": [f"Expected 1..{maximum}."]}
        ) from None
    if limit < 1 or limit > maximum:
        raise BadRequest(
            f"`limit` must be between 1 and {maximum}.", details={"limit": [f"Expected 1..{maximum}."]}
        )
    return limit


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("`cursor` is not valid.", details={"cursor": ["Unknown cursor."]}) from None
    # Cursors we issue hold an id, a name or a job group key: never a control character. "AA" decodes to a NUL
    # byte, which PostgreSQL refuses in a query parameter (it was a 500).
    if not value or len(value) > 128 or _CONTROL.search(value):
        raise BadRequest("`cursor` is not valid.", details={"cursor": ["Unknown cursor."]})
    return value


def paginate(
    queryset: QuerySet,
    params: Any,
    render: Callable[[Iterable[Any]], list[Any]],
    *,
    field: str = "id",
    newest_first: bool = True,
) -> dict[str, Any]:
    """One page by keyset on `field` (unique, time-ordered). Reads `limit` and `cursor` from params."""
    limit = parse_limit(params)
    cursor = params.get("cursor")
    if cursor:
        after = decode_cursor(cursor)
        queryset = queryset.filter(**{f"{field}__lt" if newest_first else f"{field}__gt": after})
    queryset = queryset.order_by(f"-{field}" if newest_first else field)
    rows = list(queryset[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(str(getattr(rows[-1], field))) if has_more and rows else None
    return {"data": render(rows), "next_cursor": next_cursor}
