"""Spooled's lists: `?limit=&offset=`, a bare JSON array, and `X-Has-More: true|false` (no cursor, no envelope)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import ValidationFailed

DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; anything else is 422 naming it."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValidationFailed(
            f"`{name}` must be an integer from {low} to {high}.",
            details={name: [f"Expected an integer from {low} to {high}."]},
        )
    return value


def paged(
    request: Request,
    rows: Sequence[Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    max_limit: int = 100,
) -> Response:
    """One page of `rows` (a queryset or a list, already ordered): `limit` + 1 rows are read to know whether
    there is more."""
    limit = int_param(request, "limit", default=min(DEFAULT_LIMIT, max_limit), low=1, high=max_limit)
    offset = int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
    window = list(rows[offset : offset + limit + 1])
    response = Response([render(row) for row in window[:limit]])
    response["X-Has-More"] = "true" if len(window) > limit else "false"
    return response
