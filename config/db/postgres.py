"""PostgreSQL primitives of the database seam (see config/db/__init__.py for the list and their meaning)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection
from django.db.models import Q
from psycopg import sql as pgsql

from config import fastjson

logger = logging.getLogger(__name__)

SET_BASED = True
DATETIME_MIN_SQL = "'1970-01-01T00:00:00Z'::timestamptz"
DATETIME_MAX_SQL = "'9999-12-30T00:00:00Z'::timestamptz"

_ARRAY_TYPES = {
    "CharField": "text",
    "TextField": "text",
    "PositiveIntegerField": "bigint",
    "PositiveSmallIntegerField": "bigint",
    "PositiveBigIntegerField": "bigint",
    "SmallIntegerField": "bigint",
    "IntegerField": "bigint",
    "BigIntegerField": "bigint",
    "DateTimeField": "timestamptz",
    "JSONField": "jsonb",
    "BooleanField": "boolean",
}


def now() -> datetime:
    """The database's clock (the transaction's `now()`)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def bulk_set(model: Any, objs: Sequence[Any], fields: list[str]) -> None:
    """`UPDATE … FROM unnest(arrays)`, linear in the batch. Django's bulk_update builds a CASE per field whose
    ORM resolution is quadratic: ~0.8 s for 100 jobs, which alone capped delivery near 100 jobs/s."""
    if not objs:
        return
    meta = model._meta
    cols: list[tuple[str, str, str]] = [("id", meta.pk.column, "text")]
    for name in fields:
        f = meta.get_field(name)
        cols.append((name, f.column, _ARRAY_TYPES[f.get_internal_type()]))
    arrays: list[list[Any]] = [[] for _ in cols]
    for obj in objs:
        for i, (name, _col, typ) in enumerate(cols):
            value = obj.pk if name == "id" else getattr(obj, name)
            if typ == "jsonb" and value is not None:
                value = json.dumps(value)
            arrays[i].append(value)
    unnest = ", ".join(f"%s::{'text' if typ == 'jsonb' else typ}[]" for _n, _c, typ in cols)
    names = ", ".join(f'"{col}"' for _n, col, _t in cols)
    sets = ", ".join(
        f'"{col}" = v."{col}"' + ("::jsonb" if typ == "jsonb" else "") for _n, col, typ in cols[1:]
    )
    pk = meta.pk.column
    statement = f'UPDATE {meta.db_table} AS t SET {sets} FROM unnest({unnest}) AS v({names}) WHERE t."{pk}" = v."{pk}"'
    with connection.cursor() as cursor:
        cursor.execute(statement, arrays)


def clamp_datetime(sql: str) -> str:
    """`sql` held to 1970..9999: a year-0 timestamptz is valid in PostgreSQL but psycopg cannot load it."""
    return f"least(greatest({sql}, {DATETIME_MIN_SQL}), {DATETIME_MAX_SQL})"


# Statements prepared on each connection (psycopg's: a reconnect starts over): name -> when (time.monotonic()).
_prepared: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()
# A generic plan is as good as the statistics it was built from, and a connection kept it for its whole life: the
# outcome write, prepared while the job table was small (a new deployment, or just after a TRUNCATE), kept a
# sequential scan of it as it grew (the push bench: 130 ms per 100-job batch on a 20,000-row table, where the
# primary key serves it in about 1 ms). So each statement is prepared again once its plan is this old: a few
# plannings a minute per connection, each against the tables as they are then.
PLAN_MAX_AGE_S = 5.0


def preparing(name: str, body: Callable[[], str]) -> list[str]:
    """What this connection must run before `EXECUTE name` (`body()` gives the statement, placeholders `$1`...,
    built only when needed): nothing while the plan is fresh; a PREPARE on a connection new to it; DEALLOCATE
    and PREPARE again once the plan is PLAN_MAX_AGE_S old. Marked prepared before it runs: a PREPARE outlives a
    rolled-back transaction, and one that did not happen is found by its EXECUTE failing (`forget_prepared`)."""
    raw = connection.connection
    done = _prepared.get(raw)
    if done is None:
        done = _prepared[raw] = {}
    now = time.monotonic()
    at = done.get(name)
    if at is not None and now - at < PLAN_MAX_AGE_S:
        return []
    done[name] = now
    return [*([f"DEALLOCATE {name}"] if at is not None else []), f"PREPARE {name} AS {body()}"]


def forget_prepared(name: str) -> None:
    """The session lost `name` (a pooler's DISCARD ALL): the next use prepares it again."""
    done = _prepared.get(connection.connection)
    if done is not None:
        done.pop(name, None)


def _numbered(sql: str) -> str:
    """`sql` with its `%s` placeholders as `$1`, `$2`... (a PREPARE's)."""
    pieces = sql.split("%s")
    return pieces[0] + "".join(f"${i}{piece}" for i, piece in enumerate(pieces[1:], 1))


def statement_name(sql: str) -> str:
    """The name `prepared` gives `sql` on every connection."""
    return "spindle_" + hashlib.blake2s(sql.encode(), digest_size=6).hexdigest()


def prepared(
    statements: Sequence[tuple[str, Sequence[Any]]],
) -> tuple[list[tuple[str, list[Any]]], list[str]]:
    """Hot statements (each one statement with `%s` placeholders) as EXECUTEs of statements prepared on this
    connection, and what it must run first (`preparing`: PREPAREs, and a DEALLOCATE before each that is prepared
    again). PostgreSQL then plans each once per connection and PLAN_MAX_AGE_S (a generic plan, config.db.pgengine)
    instead of on every call, where planning cost about as much as the run. The caller sends those first in the
    same round trip (each answers one result without rows). Arguments are still bound client-side, inside the
    EXECUTE's parentheses, so the PREPAREs' text keeps `%%` for a literal `%`. Needs a session-mode pooler, if any
    (a prepared statement belongs to its server session)."""
    connection.ensure_connection()
    executes, prepares = [], []
    for sql, params in statements:
        name = statement_name(sql)
        prepares += preparing(name, lambda sql=sql: _numbered(sql))
        arguments = f"({', '.join(['%s'] * len(params))})" if params else ""
        executes.append((f"EXECUTE {name}{arguments}", list(params)))
    return executes, prepares


def notify_sql(notifications: Iterable[tuple[str, str]]) -> tuple[str, list[Any]] | None:
    """NOTIFY is transactional, and PostgreSQL folds identical notifications of one transaction into one.
    One statement for all (channel, payload) pairs (never one per row)."""
    pairs = list(notifications)
    if not pairs:
        return None
    # One JSON parameter: psycopg binds a text list client-side element by element, in Python.
    return "SELECT pg_notify(n->>0, n->>1) FROM jsonb_array_elements(%s::jsonb) AS n", [fastjson.dumps(pairs)]


def json_object_each_sql(column_sql: str) -> str:
    return f"jsonb_each_text({column_sql})"


def json_array_contains(lookup: str, column_sql: str, value: Any) -> Q:
    """`column @> '["value"]'`: served by a GIN index (jsonb_path_ops) on the column."""
    return Q(**{f"{lookup}__contains": [value]})


class Listener:
    """One LISTEN connection per process and channel shared by every waiter, so a hundred idle waiters hold one
    PostgreSQL connection, not a hundred. A daemon thread reads notifications and wakes the waiters of the
    notified payload; after a (re)connect it wakes everyone, since notifications may have been missed."""

    def __init__(self, conninfo: dict[str, Any], channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        # Called with every payload, and with None after a (re)connect (notifications may have been missed).
        self._watchers: list[Callable[[str | None], None]] = []
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"spindle-listen-{channel}", daemon=True)
        self._thread.start()

    def subscribe(self, *keys: str) -> threading.Event:
        """One event woken by a notification whose payload is any of `keys`."""
        event = threading.Event()
        with self._lock:
            for key in keys:
                self._waiters.setdefault(key, set()).add(event)
        # Until LISTEN is in place a notification could be missed; the caller checks again after this returns.
        self._listening.wait(timeout=2.0)
        return event

    def unsubscribe(self, event: threading.Event, *keys: str) -> None:
        with self._lock:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    def watch(self, callback: Callable[[str | None], None]) -> None:
        """Call `callback` on the listener thread with every payload of the channel (it must be quick), and with
        None after each (re)connect."""
        with self._lock:
            self._watchers.append(callback)

    @property
    def listening(self) -> bool:
        """Whether LISTEN is in place now."""
        return self._listening.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _wake(self, key: str | None) -> None:
        with self._lock:
            if key is None:
                events = [e for waiters in self._waiters.values() for e in waiters]
            else:
                events = list(self._waiters.get(key, ()))
            watchers = list(self._watchers)
        for event in events:
            event.set()
        for callback in watchers:
            try:
                callback(key)
            except Exception:  # noqa: BLE001 - a watcher's bug must not end the listener
                logger.exception("listener watcher failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**self._conninfo, autocommit=True) as conn:
                    conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self._channel)))
                    self._listening.set()
                    self._wake(None)
                    while not self._stopping.is_set():
                        # The timeout only bounds how long a stop() waits; wake-ups arrive as they come.
                        for notify in conn.notifies(timeout=0.5):
                            self._wake(notify.payload)
            except psycopg.Error:
                logger.warning("listener connection lost; reconnecting", exc_info=True)
                self._listening.clear()
                self._wake(None)
                self._stopping.wait(0.5)
        self._listening.clear()


_listeners_lock = threading.Lock()
_listeners: dict[str, Listener] = {}


def _conninfo() -> dict[str, Any]:
    db = connection.settings_dict
    conninfo = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
    }
    return {k: v for k, v in conninfo.items() if v is not None}


def listener(channel: str) -> Listener:
    """This process's shared listener on `channel`, started on first use."""
    with _listeners_lock:
        instance = _listeners.get(channel)
        if instance is None:
            instance = _listeners[channel] = Listener(_conninfo(), channel)
        return instance


def listeners_stop() -> None:
    """Close this process's LISTEN connections."""
    with _listeners_lock:
        instances = list(_listeners.values())
        _listeners.clear()
    for instance in instances:
        instance.stop()
