"""An enqueue's writes on PostgreSQL (jobs/services/enqueue.py builds the rows): the job rows, their events, the pull
queue's NOTIFY, the per-minute rollup and the quota upsert, in one round trip with the COMMIT, or, for a large
batch, through a pipeline that overlaps the database's work with Python's."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import chain

import psycopg
from django.db import connection
from django.db.models.fields import NOT_PROVIDED
from psycopg.pq import TransactionStatus

from accounts.models import Workspace
from billing.services import quota_consume_statement, quota_exceeded
from config import db
from jobs.models import Job
from jobs.services.dispatch import kick_statement
from jobs.specs import STREAM_CHUNK
from queues.events import PendingEvent, events_insert_sql, json_param

# Works on PostgreSQL and SQLite (>= 3.24) alike. Served by the unique constraint jobs_stat_queue_minute_uniq.
ROLLUP_SQL = (
    "INSERT INTO jobs_queueminutestat"
    " (workspace_id, queue_id, minute, enqueued, completed, failed, timeout, duration_sum_ms, duration_count,"
    " duration_hist)"
    " VALUES (%s, %s, %s, %s, 0, 0, 0, 0, 0, '{}')"
    " ON CONFLICT (queue_id, minute) DO UPDATE SET enqueued = jobs_queueminutestat.enqueued + excluded.enqueued"
)
_QUOTA_GUARD_SQL = (
    "WITH consumed AS ({quota}) SELECT spindle_require(EXISTS (SELECT FROM consumed), 'quota exceeded')"
)


@functools.cache
def _optional_attnames() -> tuple[str, ...]:
    return tuple(f.attname for f in Job._meta.concrete_fields if f.null and f.db_default is NOT_PROVIDED)


_COLUMNS: dict[tuple[str, ...], tuple[str, list[tuple[str, str]]]] = {}


def _job_columns(jobs: list[Job]) -> tuple[str, list[tuple[str, str]]]:
    """(quoted column list, [(column, attname)]) for these rows, built once per set of omitted columns."""
    # Nullable columns that are NULL in every row are left out (NULL is their default): fewer values to encode.
    optional = _optional_attnames()
    if len(jobs) == 1:
        row = jobs[0].__dict__
        omitted = tuple(a for a in optional if row[a] is None)
    else:
        omitted = tuple(a for a in optional if all(job.__dict__[a] is None for job in jobs))
    return _columns_without(omitted)


def _columns_without(omitted: tuple[str, ...]) -> tuple[str, list[tuple[str, str]]]:
    found = _COLUMNS.get(omitted)
    if found is None:
        fields = [f for f in Job._meta.concrete_fields if f.attname not in omitted]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        found = _COLUMNS[omitted] = (columns, [(f.column, f.attname) for f in fields])
    return found


def _insert_jobs_statement(
    jobs: list[Job],
    columns: tuple[str, list[tuple[str, str]]] | None = None,
    skip_nulls: frozenset[str] = frozenset(),
) -> tuple[str, list]:
    """PostgreSQL: every row in one INSERT … SELECT over one JSON parameter (`jsonb_populate_recordset`), sent in
    the round trip of the events, rollup and quota statements. Measured beside a multi-row INSERT and a COPY of
    the same 1,000 rows: as fast as the COPY on the server (about half the multi-row INSERT's time), a fifth of
    either's client CPU, and no round trips of its own. A JSON null is SQL NULL, as Django writes JSONField None.
    The attributes in `skip_nulls` are left out of a row where they are None (the recordset's NULL)."""
    columns, names = columns or _job_columns(jobs)
    if skip_nulls:
        rows = [
            {c: v for c, a in names if (v := row[a]) is not None or a not in skip_nulls}
            for row in (job.__dict__ for job in jobs)
        ]
    else:
        rows = [{column: job.__dict__[attname] for column, attname in names} for job in jobs]
    sql = (
        f"INSERT INTO jobs_job ({columns}) SELECT {columns}"
        " FROM jsonb_populate_recordset(NULL::jobs_job, %s::jsonb)"
    )
    return sql, [json_param(rows)]


def write_set_based(
    *,
    workspace: Workspace,
    queue_id: str,
    jobs: list[Job],
    events: list[PendingEvent],
    minute: object,
    now: datetime,
    commit: bool,
    present: Callable[[], None] | None = None,
) -> None:
    """(3)-(6) and the quota in ONE round trip: the job rows, events, the NOTIFY of pull queues (delivered at
    commit), the per-minute rollup, then the quota upsert; the two row locks are held only until COMMIT."""
    count = len(jobs)
    tail = _tail_statements(
        workspace=workspace, queue_id=queue_id, count=count, minute=minute, now=now, commit=commit
    )
    if commit and pipelined(count):
        chunks = (
            (jobs[at : at + PIPELINE_CHUNK], events[at : at + PIPELINE_CHUNK])
            for at in range(0, count, PIPELINE_CHUNK)
        )
        statements = _chunk_statements(chunks, columns=_job_columns(jobs), now=now)
        _write_pipelined(statements=statements, tail=tail, present=present)
        return
    parts = [_insert_jobs_statement(jobs), events_insert_sql(events, now=now), *tail]
    # Prepared on the connection (planned once per connection); the PREPAREs it still needs go first.
    parts, prepares = db.backend().prepared(parts)
    sql, params = ";\n".join([*prepares, *(s for s, _ in parts)]), [p for _, ps in parts for p in ps]
    if commit:
        _execute_committing(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while cursor.nextset():
            pass
        # The cursor is left on the last statement's rows: the quota upsert's RETURNING.
        consumed = cursor.fetchone()
    if consumed is None:
        raise quota_exceeded(workspace=workspace, now=now)


def _tail_statements(
    *, workspace: Workspace, queue_id: str, count: int, minute: object, now: datetime, commit: bool
) -> list[tuple[str, list]]:
    """What follows the rows: the pull queue's NOTIFY (delivered at commit), the rollup, then the quota upsert
    (raising QUOTA_SQLSTATE when short if the statements commit themselves)."""
    tail = []
    notify = kick_statement([queue_id])
    if notify is not None:
        tail.append(notify)
    tail.append((ROLLUP_SQL, [workspace.id, queue_id, minute, count]))
    quota_sql, quota_params = quota_consume_statement(workspace=workspace, count=count, now=now)
    tail.append(
        (_QUOTA_GUARD_SQL.format(quota=quota_sql), quota_params) if commit else (quota_sql, quota_params)
    )
    return tail


@functools.cache
def _pipeline_supported() -> bool:
    """Pipeline mode needs libpq 14 or later (psycopg[binary] bundles one; a system libpq may be older)."""
    return psycopg.Pipeline.is_supported()


# A batch this large is written in chunks through a pipeline (_write_pipelined).
PIPELINE_MIN_JOBS = 200
PIPELINE_CHUNK = STREAM_CHUNK


def pipelined(count: int) -> bool:
    """Whether a committing enqueue of `count` jobs goes through a pipeline (_write_pipelined)."""
    return count >= PIPELINE_MIN_JOBS and _pipeline_supported()


def write_streamed(
    *,
    workspace: Workspace,
    queue_id: str,
    chunks: Iterator[tuple[list[Job], list[PendingEvent]]],
    count: int,
    minute: object,
    now: datetime,
    present: Callable[[], None] | None = None,
) -> None:
    """write_set_based's statements and COMMIT for a batch of `count` jobs (`pipelined`) whose rows are still
    being checked and built: each chunk of `chunks` is encoded and sent as it comes, while PostgreSQL writes the
    ones before. An error raised by `chunks` (an item refused) stops the writes before the COMMIT; the caller's
    transaction then rolls back what was sent."""
    tail = _tail_statements(
        workspace=workspace, queue_id=queue_id, count=count, minute=minute, now=now, commit=True
    )
    # Every column: a chunk is encoded before the later rows are known, so no column is left out of the statement
    # (one statement text, prepared once); each row leaves out its NULL optional values instead.
    statements = _chunk_statements(
        chunks, columns=_columns_without(()), skip_nulls=frozenset(_optional_attnames()), now=now
    )
    _write_pipelined(statements=statements, tail=tail, present=present)


def _chunk_statements(
    chunks: Iterator[tuple[list[Job], list[PendingEvent]]],
    *,
    columns: tuple[str, list[tuple[str, str]]],
    now: datetime,
    skip_nulls: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, list]]:
    """Each chunk's job INSERT, then its events' INSERT, built as the chunk comes."""
    for jobs, events in chunks:
        yield _insert_jobs_statement(jobs, columns, skip_nulls)
        yield events_insert_sql(events, now=now)


def _write_pipelined(
    *,
    statements: Iterator[tuple[str, list]],
    tail: list[tuple[str, list]],
    present: Callable[[], None] | None,
) -> None:
    """A large batch's writes and COMMIT through a psycopg pipeline: each statement is sent as soon as it is
    built, without waiting for the one before. PostgreSQL inserts the first chunk of rows while Python encodes
    the next, and the caller's `present` (the response) is built while the last ones are written; alone, the
    Python work and the database's took turns (a 1,000-job batch: about 70 ms of each). The statements are those
    of the single round trip (same transaction, same order, the quota last), so a refused quota or a failed row
    still rolls every row back: the pipeline stops at the first error and raises it when it is read back."""
    pending = chain(statements, tail)
    first = [next(pending), next(pending)]
    # Every statement has the text of one of these, so the PREPAREs a new connection needs all go first: a
    # pipeline that stops at an error runs none of what follows it.
    _, prepares = db.backend().prepared([*first, *tail])
    raw = connection.connection
    with connection.wrap_database_errors, connection.cursor() as cursor, raw.pipeline():
        for sql in prepares:
            cursor.execute(sql, [])
        for statement in chain(first, pending):
            for sql, params in db.backend().prepared([statement])[0]:
                cursor.execute(sql, params)
        if present is not None:
            present()  # before the COMMIT is sent: should it raise, nothing commits
        cursor.execute("COMMIT")


def _execute_committing(sql: str, params: list) -> None:
    """Run the enqueue's last statements and commit them in the same round trip. The quota's and the rollup's
    row locks serialise a workspace's enqueues until COMMIT: committed on the server, they are released without
    waiting for this client (under 16 clients most of an enqueue's time was spent queued on them). If nothing ran
    yet, the statements go as one simple query in autocommit mode, which PostgreSQL runs as one implicit
    transaction (no BEGIN or COMMIT round trip). Either way the caller's atomic block finds the connection idle,
    so its COMMIT is a no-op; a short quota raises QUOTA_SQLSTATE on the server first and nothing commits."""
    raw = connection.connection
    implicit = raw.info.transaction_status == TransactionStatus.IDLE
    with connection.cursor() as cursor:
        if not implicit:
            cursor.execute(sql + ";\nCOMMIT", params)
            return
        raw.autocommit = True
        try:
            cursor.execute(sql, params)
        finally:
            # A lost connection (status UNKNOWN) refuses the change; Django discards it after the error anyway.
            if raw.info.transaction_status == TransactionStatus.IDLE:
                raw.autocommit = False
