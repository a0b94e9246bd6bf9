"""The database seam: every PostgreSQL/SQLite difference sits behind one backend module per database.

`backend()` picks `config.db.postgres` or `config.db.sqlite` by the default connection's vendor, once per
vendor (cached), and the code above calls its primitives instead of branching on `connection.vendor`. Both
modules are plumbing: they import no app (config is the lowest layer, DESIGN.md "Layers").

Primitives (the `Backend` protocol below; both modules provide all of them):

- `SET_BASED` (bool): the database runs the set-based hot-path dialect (several `;`-separated statements in
  one `execute`, read with `cursor.nextset()`; jsonb; `FOR UPDATE SKIP LOCKED` inside CTEs with RETURNING).
  Callers that hold such a one-round-trip statement use it when True and their ORM path otherwise; both give
  the same rows and events. True on PostgreSQL, False on SQLite (embedded mode, a single writer).
- `now()`: the database clock, for every "due" and "expired" decision (never a worker's clock). SQLite shares
  the machine's clock with every process, so there it is `timezone.now()`.
- `bulk_set(model, objs, fields)`: write `fields` of each object in one statement (PostgreSQL:
  `UPDATE … FROM unnest(arrays)`, linear in the batch; SQLite: `bulk_update`).
- `clamp_datetime(sql)` and `DATETIME_MIN_SQL` / `DATETIME_MAX_SQL`: hold a timestamp expression to
  1970..9999 in SQL, so a value stored before input validation can still be loaded by the driver.
- `prepared(statements)`: hot `(sql, params)` statements as EXECUTEs of statements prepared on the connection
  (planned once per connection), with the PREPAREs the caller sends first in the same round trip (PostgreSQL);
  as they are, with none (SQLite).
- `notify_sql(notifications)`: the statement that sends one transactional notification per (channel, payload)
  (delivered at commit, dropped on rollback), as `(sql, params)` for the caller to run in its transaction, or
  None where the database has no NOTIFY.
- `listener(channel)`: this process's shared `Listener` on a channel (one connection for every waiter), or
  None where the database has no LISTEN: the caller then re-tries on a short timer. `listeners_stop()` closes
  them (tests call it so the test database can be dropped).
- `json_array_contains(lookup, column_sql, value)`: a filter for "the JSON array column contains `value`"
  (PostgreSQL: `@>`, served by a GIN index; SQLite: `json_each`).
- `json_object_each_sql(column_sql)`: a FROM item that expands the JSON object column into rows of `key` and
  `value` (text on PostgreSQL, the JSON scalar on SQLite), one per key (`jsonb_each_text` / `json_each`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Protocol, cast

from django.db import connection
from django.db.models import Model, Q

_MODULES = {"postgresql": "config.db.postgres", "sqlite": "config.db.sqlite"}


class Listener(Protocol):
    """A shared LISTEN connection: waiters subscribe to payloads and are woken by a matching notification."""

    def subscribe(self, *keys: str) -> threading.Event: ...

    def unsubscribe(self, event: threading.Event, *keys: str) -> None: ...

    def watch(self, callback: Callable[[str | None], None]) -> None: ...

    @property
    def listening(self) -> bool: ...


class Backend(Protocol):
    SET_BASED: bool
    DATETIME_MIN_SQL: str
    DATETIME_MAX_SQL: str

    def now(self) -> datetime: ...

    def bulk_set(self, model: Any, objs: Sequence[Any], fields: list[str]) -> None: ...

    def clamp_datetime(self, sql: str) -> str: ...

    def prepared(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> tuple[list[tuple[str, list[Any]]], list[str]]: ...

    def notify_sql(self, notifications: Iterable[tuple[str, str]]) -> tuple[str, list[Any]] | None: ...

    def listener(self, channel: str) -> Listener | None: ...

    def listeners_stop(self) -> None: ...

    def json_array_contains(self, lookup: str, column_sql: str, value: Any) -> Q: ...

    def json_object_each_sql(self, column_sql: str) -> str: ...


@cache
def _load(vendor: str) -> Backend:
    return cast(Backend, importlib.import_module(_MODULES[vendor]))


def backend() -> Backend:
    """The backend module of the default database (chosen once per vendor)."""
    return _load(connection.vendor)


# (field position, converter functions, column) for each concrete field that has converters.
Converters = list[tuple[int, list[Any], Any]]


def field_converters(model: type[Model]) -> Converters:
    """The value converters the ORM's compiler would apply to a raw row of `model`'s concrete fields (JSON,
    SQLite datetimes, …), for hand-written SELECTs that are built once per process and skip the compiler."""
    converters: Converters = []
    for i, f in enumerate(model._meta.concrete_fields):
        col = f.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
        if found:
            converters.append((i, found, col))
    return converters


def converted(values: Sequence[Any], converters: Converters) -> list[Any]:
    """A raw row's values with `field_converters` applied, ready for `Model.from_db`."""
    out = list(values)
    for i, funcs, col in converters:
        for func in funcs:
            out[i] = func(out[i], col, connection)
    return out


def execute_prepared(cursor: Any, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run `statements` ((sql, params) each, one statement apiece) in one round trip, each prepared on the
    connection where the database prepares statements (`prepared`), with the PREPAREs a new connection still
    needs in front; the cursor is left on the first statement's result."""
    executes, prepares = backend().prepared(statements)
    cursor.execute(
        ";\n".join([*prepares, *(sql for sql, _ in executes)]), [p for _, ps in executes for p in ps]
    )
    for _ in prepares:
        cursor.nextset()
