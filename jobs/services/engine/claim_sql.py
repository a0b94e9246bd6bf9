"""The claim in one round trip, for a database that runs set-based SQL (config.db `SET_BASED`).

Statement 1 locks the queue row FOR NO KEY UPDATE: claimers of a queue are serialised, so concurrency, group and
rate limits are exact across any number of workers, while enqueues (whose FK checks take FOR KEY SHARE) are not
blocked. Statement 2 runs on a fresh snapshot taken after that lock (READ COMMITTED takes one per statement), so
it counts the jobs the previous claimer just leased and honours a pause committed a moment ago. It picks ready
rows SKIP LOCKED (partial index jobs_job_ready), leases them, and inserts their executions and `job:active`
events, all set-based. Both statements are one implicit transaction, or part of the caller's. Queues with
group_concurrency take the ORM path (claim._claim_orm) for their round-robin bookkeeping.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from django.conf import settings
from django.db import ProgrammingError, connection

from config.db import postgres
from config.ids import sql_id_expr, sql_id_head
from jobs.models import Job
from jobs.services.engine.common import MAX_CLAIM
from jobs.services.engine.rows import QUEUE_COLS, job_cols_safe, load_job, load_queue
from queues.models import Queue


@cache
def _claim_sql() -> str:
    return f"""
SELECT {QUEUE_COLS} FROM queues_queue WHERE id = %(queue)s::text FOR NO KEY UPDATE;
WITH r AS MATERIALIZED (
    -- room: what the queue's own limits (concurrency, rate limit) allow now; NULL parts are no limit (least()).
    -- MATERIALIZED: inlined into q, `room` appeared twice there and EXPLAIN showed the active-job count (and the
    -- rate window's) computed twice per claim, each a scan of the queue's active jobs.
    SELECT id, name, paused_job_names, now() AS now,
           make_interval(secs => greatest(coalesce(%(lease_ms)s::bigint, lease_ms), %(min_lease_ms)s::bigint) / 1000.0) AS lease,
           greatest(0, least(
               concurrency - (SELECT count(*) FROM jobs_job WHERE queue_id = %(queue)s::text AND state = 'active'),
               CASE WHEN coalesce(rate_limit, 'null'::jsonb) IN ('null'::jsonb, '{{}}'::jsonb) THEN NULL ELSE
                   coalesce((rate_limit->>'max')::bigint, 0) - (
                       SELECT count(*) FROM jobs_execution WHERE queue_id = %(queue)s::text AND started_at > now()
                           - make_interval(secs => coalesce(nullif((rate_limit->>'per_ms')::float8, 0), 1000) / 1000))
               END
           )) AS room
    FROM queues_queue
    WHERE id = %(queue)s::text AND NOT paused AND group_concurrency IS NULL AND (%(delivery)s::text IS NULL OR delivery = %(delivery)s::text)
), q AS (
    SELECT *, least(%(limit)s::bigint, room) AS available FROM r
), picked AS (
    SELECT j.id, j.priority, j.run_at FROM jobs_job j
    WHERE j.queue_id = %(queue)s::text AND j.state = 'waiting'
      AND (j.name IS NULL OR NOT ((SELECT paused_job_names FROM q) ? j.name))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT coalesce((SELECT available FROM q), 0)
    FOR UPDATE OF j SKIP LOCKED
), upd AS (
    UPDATE jobs_job j SET
        state = 'active', attempts = j.attempts + 1, lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = q.now + q.lease, started_at = q.now, worker_id = %(worker)s::text,
        execution_id = {sql_id_expr("%(exe_head)s::text", "n.rn")}, updated_at = q.now
    -- The picked ids, ranked, as an array's elements: the planner sizes an unnested array at a fixed guess,
    -- whatever the job table's statistics, so each row comes from one primary-key lookup. Joined to a CTE
    -- instead, a plan made on a small table hash-joined the rows against a sequential scan of the grown table
    -- (30 ms for one job); and a repeated `j.id = ANY(ARRAY(...))`, which kept the primary key, looked up every
    -- picked id once per picked row (a batch of 50 read 1,275 rows and kept 50: two thirds of its 8 ms).
    FROM unnest(ARRAY(SELECT id FROM picked ORDER BY priority DESC, run_at, id)) WITH ORDINALITY AS n(id, rn), q
    WHERE j.id = n.id
    RETURNING j.*, {sql_id_expr("%(evt_head)s::text", "n.rn")} AS evt_id, n.rn AS rn
), exe AS (
    INSERT INTO jobs_execution (id, workspace_id, job_id, queue_id, schedule_id, attempt, status, lease_token,
                                started_at, worker_id, replay_of)
    SELECT execution_id, workspace_id, id, queue_id, schedule_id, attempts, 'running', lease_token, started_at,
           worker_id, replay_of
    FROM upd
), evt AS (
    INSERT INTO jobs_event (id, workspace_id, type, queue_name, job_id, data, created_at)
    SELECT u.evt_id, u.workspace_id, 'job:active', q.name, u.id,
           jsonb_build_object('attempt', u.attempts, 'worker', u.worker_id), q.now
    FROM upd u, q
), leased AS (
    SELECT {job_cols_safe()}, rn FROM upd
)
SELECT q.room, leased.* FROM q LEFT JOIN leased ON true ORDER BY leased.rn
"""


# The claim's second statement is a prepared statement of each connection: planning it (a data-modifying CTE over
# four tables) took longer than running it (1.2 ms vs 0.9 ms warm, PostgreSQL 15 here), on every claim. Statement 1
# and the EXECUTE still go in one round trip; arguments are bound client-side, in the EXECUTE's parentheses.
# Connections plan prepared statements once (generic plans, config.db.pgengine): with PostgreSQL's default the
# EXECUTE was planned again on every claim (planning 0.7 ms, execution 0.4 ms).
_PREPARED = "spindle_claim_1"
_NO_SUCH_STATEMENT = "26000"  # invalid_sql_statement_name
_PARAMS = ("queue", "limit", "lease_ms", "min_lease_ms", "worker", "delivery", "exe_head", "evt_head")


@cache
def _prepare_parts() -> tuple[str, str]:
    """(statement 2 with `$n` placeholders, statement 1 + its EXECUTE with named placeholders)."""
    lock, claim = _claim_sql().split(";\n", 1)
    for i, name in enumerate(_PARAMS, 1):
        claim = claim.replace(f"%({name})s", f"${i}")
    execute = f"{lock};\nEXECUTE {_PREPARED}(" + ", ".join(f"%({name})s" for name in _PARAMS) + ")"
    return claim, execute


def _prepared_claim() -> tuple[str, int]:
    """(the claim's SQL for this connection, how many leading results it has before statement 1's). On a
    connection new to it, or once its plan is old (config.db.postgres.preparing), the PREPARE goes first in the
    same round trip."""
    body, execute = _prepare_parts()
    first = postgres.preparing(_PREPARED, lambda: body)
    return ";\n".join([*first, execute]), len(first)


def _run_claim(params: dict[str, Any], *, retry: bool = True) -> tuple[tuple | None, list[tuple]]:
    """Run the claim: (the queue row, the claim's rows)."""
    connection.ensure_connection()
    sql, skip = _prepared_claim()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for _ in range(skip):
                cursor.nextset()
            row = cursor.fetchone()
            cursor.nextset()
            return row, cursor.fetchall()
    except ProgrammingError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _NO_SUCH_STATEMENT:
            raise
        # The statement is gone (DISCARD ALL by a pooler?): prepare it again, now if no transaction was lost.
        postgres.forget_prepared(_PREPARED)
        if not retry or connection.in_atomic_block:
            raise
    return _run_claim(params, retry=False)


class SetClaim(NamedTuple):
    """A set-based claim: the queue row as locked, the jobs leased, and whether the claim used up what the
    queue's own limits (concurrency, rate limit) allowed: then ready jobs may be left that no hint will fetch
    until capacity frees, so whoever frees it must kick the queue (and kicking it sooner is useless)."""

    queue: Queue | None
    jobs: list[Job]
    capped: bool


def claim_set_based(
    *, queue_id: str, limit: int, lease_ms: int | None, worker_id: str | None, delivery: str | None = None
) -> SetClaim:
    """The claim in one round trip; (None, [], False) if the queue is gone or of another delivery."""
    # Bounded: a batch this size is plenty, and the ids built from a row's rank need it below 2**30.
    limit = min(int(limit), MAX_CLAIM)
    params = {
        "queue": queue_id,
        "limit": limit,
        "lease_ms": None if lease_ms is None else int(lease_ms),
        "min_lease_ms": int(settings.SPINDLE_MIN_LEASE_MS),
        "worker": worker_id,
        "delivery": delivery,
        # Execution and event ids: a head drawn here, the row's rank appended in SQL (config.ids), so a claim
        # mints no ids in Python for rows it may not lease.
        "exe_head": sql_id_head("exe"),
        "evt_head": sql_id_head("evt"),
    }
    row, rows = _run_claim(params)
    if row is None:
        return SetClaim(None, [], False)
    queue = load_queue(row)
    if delivery is not None and queue.delivery != delivery:
        return SetClaim(None, [], False)
    # Each row: the queue's room, the job's columns, its rank; one row of NULL job columns when the claim
    # leased nothing, none when the queue is paused or has group caps (no `q` row).
    jobs = [load_job(r[1:-1]) for r in rows if r[1] is not None]
    for job in jobs:
        job.queue = queue
    room = rows[0][0] if rows else None
    return SetClaim(queue, jobs, room is not None and len(jobs) >= room)
