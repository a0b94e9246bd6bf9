"""SQLite primitives of the database seam (embedded mode: one machine, a single writer at a time).

See config/db/__init__.py for the list and their meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

SET_BASED = False
# SQLite stores datetimes as text and loads any of them, so nothing needs clamping.
DATETIME_MIN_SQL = "'1970-01-01 00:00:00'"
DATETIME_MAX_SQL = "'9999-12-30 00:00:00'"


def now() -> datetime:
    """Every process shares the machine's clock, which is the database's."""
    return timezone.now()


def bulk_set(model: Any, objs: Sequence[Any], fields: list[str]) -> None:
    if objs:
        model.objects.bulk_update(objs, fields, batch_size=500)


def clamp_datetime(sql: str) -> str:
    return sql


def prepared(
    statements: Sequence[tuple[str, Sequence[Any]]],
) -> tuple[list[tuple[str, list[Any]]], list[str]]:
    """SQLite plans each statement itself: the statements as they are, nothing to prepare."""
    return [(sql, list(params)) for sql, params in statements], []


def notify_sql(notifications: Iterable[tuple[str, str]]) -> tuple[str, list[Any]] | None:
    """No NOTIFY: waiters re-try on a timer (see `listener`)."""
    return None


def listener(channel: str) -> None:
    """No LISTEN: the caller re-tries on a short timer."""
    return None


def listeners_stop() -> None:
    return None


def json_object_each_sql(column_sql: str) -> str:
    return f"json_each({column_sql})"


def json_array_contains(lookup: str, column_sql: str, value: Any) -> Q:
    """No JSON containment operator: json_each scans the (short) array of each row."""
    return Q(
        RawSQL(
            f"EXISTS (SELECT 1 FROM json_each({column_sql}) WHERE json_each.value = %s)",
            [value],
            output_field=BooleanField(),
        )
    )
