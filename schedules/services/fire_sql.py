"""The set-based firing path (PostgreSQL): one statement locks a batch of due schedules, plans their ticks, inserts
the tick rows, the jobs, their events, the rollup and the quota refusals, and advances the schedules; a second
one counts the jobs against each workspace's quota. No Python work per schedule (issue 15, PERF.md: 100,000
schedules, 5,000 of them every second).

- Interval ticks are arithmetic on the schedule's grid, in SQL. Cron needs croniter and the daylight-saving rules
  of schedules.timing: Python computes the ticks of each distinct (expression, timezone, due time) among the due
  cron schedules (usually a handful, however many schedules share them) and passes them in as arrays.
- Catch-up as designed: ticks late by less than the grace fire one by one; an older backlog fires once.
- Exactly once: the tick rows' unique (schedule, tick_at) with ON CONFLICT DO NOTHING decides which ticker
  enqueues a tick; a conflicting tick gets no job here. SKIP LOCKED keeps two tickers off each other's rows.
- Quota: the statement refuses a workspace whose counter (as read) cannot take its ticks, and records those as
  `quota_exceeded` executions like the row path. The authoritative conditional upsert runs last, so the counter
  rows stay locked only until COMMIT; if it refuses a workspace that the read admitted (an API enqueue raced us),
  the batch is rolled back to its savepoint and planned again with that workspace refused.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from billing.services.usage import current_period
from config.exceptions import QuotaExceeded
from config.ids import sql_id_expr, sql_id_head
from jobs.models import TERMINAL_STATES
from jobs.services.dispatch import kick_statement, remember_delivery
from queues.models import DEFAULT_RETRY_POLICY

from .. import timing
from .fire_rows import CATCHUP_GRACE

logger = logging.getLogger(__name__)

_TERMINAL = ", ".join(f"'{s.value}'" for s in TERMINAL_STATES)

# Due cron schedules grouped by what decides their ticks. Served by schedules_schedule_cron_due.
_CRON_GROUPS_SQL = (
    # The inner ORDER BY ... LIMIT keeps the plan on schedules_schedule_cron_due even with stale statistics.
    "SELECT DISTINCT cron, tz, next_run_at FROM (SELECT cron, coalesce(timezone, '') AS tz, next_run_at"
    " FROM schedules_schedule WHERE NOT paused AND cron IS NOT NULL AND next_run_at <= %s"
    " ORDER BY next_run_at LIMIT %s) AS due"
)

_FIRE_SQL = f"""
WITH cmap AS (
    SELECT * FROM unnest(%(c_expr)s::text[], %(c_tz)s::text[], %(c_first)s::timestamptz[],
                         %(c_tick)s::timestamptz[], %(c_no)s::int[], %(c_next)s::timestamptz[])
        AS c(expr, tz, first, tick_at, tick_no, new_next)
),
due AS (
    -- Served by schedules_schedule_due (partial on NOT paused). SKIP LOCKED: a second ticker takes other rows.
    SELECT s.id, s.workspace_id, s.queue_id, s.name, s.next_run_at, s.interval_ms, s.cron,
           coalesce(s.timezone, '') AS tz, s.job, s.overlap, s.last_job_id
    FROM schedules_schedule s
    WHERE NOT s.paused AND s.next_run_at <= %(now)s
      AND (s.cron IS NULL OR EXISTS (
          SELECT 1 FROM cmap c WHERE c.expr = s.cron AND c.tz = coalesce(s.timezone, '') AND c.first = s.next_run_at))
    ORDER BY s.next_run_at
    LIMIT %(batch)s
    FOR UPDATE OF s SKIP LOCKED
),
grid AS (
    -- k: whole interval steps from the due time to now (exact: epoch of an interval is numeric).
    SELECT d.*, floor(extract(epoch FROM %(now)s - d.next_run_at) * 1000 / d.interval_ms)::bigint AS k,
           (d.overlap = 'skip' AND EXISTS (
               SELECT 1 FROM jobs_job j WHERE j.id = d.last_job_id AND j.state NOT IN ({_TERMINAL}))) AS blocked
    FROM due d
),
step AS (
    SELECT g.*, CASE WHEN g.cron IS NULL
        THEN g.next_run_at + ((g.k + 1) * g.interval_ms) * interval '1 millisecond'
        ELSE (SELECT c.new_next FROM cmap c
              WHERE c.expr = g.cron AND c.tz = g.tz AND c.first = g.next_run_at LIMIT 1) END AS new_next
    FROM grid g
),
planned AS (
    SELECT p.*, row_number() OVER (ORDER BY p.workspace_id, p.queue_id, p.tick_at, p.id) AS n
    FROM (
        -- Late by less than the grace: every tick up to now; an older backlog (or overlap=skip): one.
        SELECT st.id, st.workspace_id, st.queue_id, st.name, st.job,
               st.next_run_at + (i.i * st.interval_ms) * interval '1 millisecond' AS tick_at
        FROM step st CROSS JOIN LATERAL generate_series(0, CASE
            WHEN st.overlap = 'skip' OR st.next_run_at < %(now)s - %(grace)s THEN 0 ELSE st.k END) AS i(i)
        WHERE st.cron IS NULL AND NOT st.blocked
        UNION ALL
        SELECT st.id, st.workspace_id, st.queue_id, st.name, st.job, c.tick_at
        FROM step st JOIN cmap c ON c.expr = st.cron AND c.tz = st.tz AND c.first = st.next_run_at
        WHERE st.cron IS NOT NULL AND NOT st.blocked AND (st.overlap <> 'skip' OR c.tick_no = 0)
    ) p
),
verdict AS (
    -- The quota as read: the conditional upsert after this statement is the arbiter.
    SELECT c.workspace_id, w.plan_id, pl.jobs_per_month AS lim, coalesce(u.jobs_enqueued, 0) AS used,
           (c.workspace_id = ANY(%(refused)s::text[]) OR pl.jobs_per_month IS NOT NULL
            AND coalesce(u.jobs_enqueued, 0) + c.n > pl.jobs_per_month) AS refused
    FROM (SELECT workspace_id, count(*) AS n FROM planned GROUP BY workspace_id) c
    JOIN accounts_workspace w ON w.id = c.workspace_id
    JOIN billing_plan pl ON pl.code = w.plan_id
    LEFT JOIN billing_usagecounter u ON u.workspace_id = c.workspace_id AND u.period = %(period)s
),
ticks AS (
    INSERT INTO schedules_scheduletick (schedule_id, tick_at, created_at, job_id)
    SELECT p.id, p.tick_at, clock_timestamp(),
           CASE WHEN v.refused THEN NULL ELSE {sql_id_expr("%(job_head)s", "p.n")} END
    FROM planned p JOIN verdict v USING (workspace_id)
    ON CONFLICT (schedule_id, tick_at) DO NOTHING
    RETURNING schedule_id, tick_at, job_id
),
won AS (
    SELECT p.*, t.job_id, q.name AS queue_name, q.delivery,
           coalesce(nullif(nullif(q.retry_policy, 'null'::jsonb), '{{}}'::jsonb), %(default_policy)s::jsonb) AS qp
    FROM ticks t
    JOIN planned p ON p.id = t.schedule_id AND p.tick_at = t.tick_at
    JOIN queues_queue q ON q.id = p.queue_id
),
fired AS (
    SELECT w.*, CASE WHEN jsonb_typeof(w.job -> 'retry_policy') = 'object' AND w.job -> 'retry_policy' <> '{{}}'
                     THEN w.qp || (w.job -> 'retry_policy') END AS policy
    FROM won w WHERE w.job_id IS NOT NULL
),
jobs AS (
    INSERT INTO jobs_job (id, workspace_id, queue_id, name, payload, tags, state, priority, run_at, attempts,
                          max_attempts, deferrals, retry_policy, timeout_ms, wait_for_children,
                          ignore_child_failures, http, cancel_requested, schedule_id, created_at, updated_at)
    SELECT f.job_id, f.workspace_id, f.queue_id, f.job ->> 'name', nullif(f.job -> 'payload', 'null'::jsonb),
           coalesce(nullif(f.job -> 'tags', 'null'::jsonb), '[]'::jsonb), 'waiting',
           coalesce((f.job ->> 'priority')::int, 0), now(), 0,
           coalesce(nullif((f.policy ->> 'max_attempts')::int, 0), nullif((f.qp ->> 'max_attempts')::int, 0),
                    %(default_max_attempts)s),
           0, f.policy, (f.job ->> 'timeout_ms')::bigint, false, false, nullif(f.job -> 'http', 'null'::jsonb),
           false, f.id, now(), now()
    FROM fired f ORDER BY f.n
),
events AS (
    INSERT INTO jobs_event (id, workspace_id, type, queue_name, job_id, data, created_at)
    SELECT {sql_id_expr("%(event_head)s", "2 * f.n + e.k")}, f.workspace_id,
           CASE e.k WHEN 0 THEN 'job:waiting' ELSE 'schedule:fired' END, f.queue_name, f.job_id,
           CASE e.k WHEN 0 THEN jsonb_build_object('name', f.job ->> 'name')
                ELSE jsonb_build_object('schedule', f.name, 'manual', false, 'tick_at',
                     to_char(f.tick_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) END,
           now()
    FROM fired f CROSS JOIN (VALUES (0), (1)) AS e(k)
),
refusals AS (
    INSERT INTO jobs_execution (id, workspace_id, job_id, queue_id, schedule_id, attempt, status, started_at,
                                completed_at, duration_ms, error)
    SELECT {sql_id_expr("%(execution_head)s", "w.n")}, w.workspace_id, NULL, w.queue_id, w.id, 0,
           'quota_exceeded', %(now)s, %(now)s, 0,
           jsonb_build_object('message', %(quota_message)s::text, 'type', 'quota_exceeded',
               'tick_at', to_char(w.tick_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'used', v.used, 'limit', v.lim, 'plan', v.plan_id)
    FROM won w JOIN verdict v USING (workspace_id) WHERE w.job_id IS NULL
),
rollup AS (
    -- Fired ticks count as enqueued, refused ones as errors ("quota_exceeded|", jobs.services.stats.error_key).
    INSERT INTO jobs_queueminutestat (workspace_id, queue_id, minute, enqueued, completed, failed, timeout,
                                      duration_sum_ms, duration_count, duration_hist, errors)
    SELECT workspace_id, queue_id, date_trunc('minute', now(), 'UTC'), count(job_id), 0, 0, 0, 0, 0, '{{}}',
           CASE WHEN count(job_id) = count(*) THEN '{{}}'::jsonb
                ELSE jsonb_build_object('quota_exceeded|', count(*) - count(job_id)) END
    FROM won GROUP BY workspace_id, queue_id ORDER BY queue_id
    ON CONFLICT (queue_id, minute) DO UPDATE SET
        enqueued = jobs_queueminutestat.enqueued + excluded.enqueued,
        errors = CASE WHEN excluded.errors = '{{}}'::jsonb THEN jobs_queueminutestat.errors
                      ELSE jobs_queueminutestat.errors || jsonb_build_object('quota_exceeded|',
                          coalesce((jobs_queueminutestat.errors ->> 'quota_exceeded|')::bigint, 0)
                          + (excluded.errors ->> 'quota_exceeded|')::bigint) END
),
advanced AS (
    UPDATE schedules_schedule s
    SET next_run_at = st.new_next,
        last_run_at = CASE WHEN l.job_id IS NULL THEN s.last_run_at ELSE %(now)s END,
        last_job_id = coalesce(l.job_id, s.last_job_id)
    FROM step st
    LEFT JOIN (SELECT DISTINCT ON (id) id, job_id FROM fired ORDER BY id, tick_at DESC) l ON l.id = st.id
    WHERE s.id = st.id
)
SELECT (SELECT count(*) FROM due), w.workspace_id, w.queue_id, w.delivery,
       count(*) FILTER (WHERE w.job_id IS NOT NULL), count(*) FILTER (WHERE w.job_id IS NULL)
FROM won w GROUP BY w.workspace_id, w.queue_id, w.delivery
UNION ALL
SELECT (SELECT count(*) FROM due), NULL, NULL, NULL, 0, 0
"""

# The authoritative quota: each workspace's jobs counted in one conditional upsert, locks taken in id order.
_QUOTA_SQL = """
INSERT INTO billing_usagecounter AS u (workspace_id, period, jobs_enqueued)
SELECT x.w, %(period)s, x.n FROM unnest(%(ws)s::text[], %(counts)s::bigint[]) AS x(w, n)
JOIN accounts_workspace a ON a.id = x.w JOIN billing_plan p ON p.code = a.plan_id
WHERE p.jobs_per_month IS NULL OR x.n <= p.jobs_per_month
ORDER BY x.w
ON CONFLICT (workspace_id, period) DO UPDATE SET jobs_enqueued = u.jobs_enqueued + excluded.jobs_enqueued
WHERE u.jobs_enqueued + excluded.jobs_enqueued <= coalesce(
    (SELECT p.jobs_per_month FROM accounts_workspace a JOIN billing_plan p ON p.code = a.plan_id
     WHERE a.id = u.workspace_id), u.jobs_enqueued + excluded.jobs_enqueued)
RETURNING workspace_id
"""

# A workspace the conditional upsert refused after the read admitted it is planned again as refused; an API
# enqueue racing the same counter this often in one batch would be pathological.
_QUOTA_RETRIES = 3


class QuotaRace(Exception):
    """The quota refused a workspace again after every re-plan: the caller fires the batch row by row."""


def cron_ticks(*, now: datetime, limit: int) -> dict[str, list[Any]]:
    """The ticks of the due cron schedules' distinct (expression, timezone, due time), as the statement's arrays."""
    arrays: dict[str, list[Any]] = {k: [] for k in ("c_expr", "c_tz", "c_first", "c_tick", "c_no", "c_next")}
    with connection.cursor() as cursor:
        cursor.execute(_CRON_GROUPS_SQL, [now, limit])
        groups = cursor.fetchall()
    for expr, tz, first in groups:
        ticks, nxt = timing.due_ticks(
            cron=expr, interval_ms=None, tz_name=tz or None, first=first, now=now, grace=CATCHUP_GRACE
        )
        for number, tick in enumerate(ticks):
            for key, value in zip(arrays, (expr, tz, first, tick, number, nxt), strict=True):
                arrays[key].append(value)
    return arrays


def fire_batch_sql(*, now: datetime, batch_size: int) -> tuple[int, int]:
    """Fire up to `batch_size` due schedules set-based; returns (jobs enqueued, schedules selected).

    Runs inside the caller's transaction; raises DatabaseError for the caller to fall back to the row path.
    """
    params: dict[str, Any] = {
        **cron_ticks(now=now, limit=batch_size),
        "now": now,
        "grace": CATCHUP_GRACE,
        "batch": batch_size,
        # The quota period of the enqueue's clock, as job_enqueue_specs counts it (`now` may be a test's clock).
        "period": current_period(),
        "default_policy": json.dumps(DEFAULT_RETRY_POLICY),
        "default_max_attempts": DEFAULT_RETRY_POLICY["max_attempts"],
        "quota_message": QuotaExceeded.default_message,
        "refused": [],
    }
    for _attempt in range(_QUOTA_RETRIES):
        with transaction.atomic():
            selected, fired, refused = _run(params)
            missing = _consume_quota(fired)
            if not missing:
                break
            # Planned again with these workspaces refused: leave the savepoint by rolling it back.
            params["refused"] = sorted({*params["refused"], *missing})
            transaction.set_rollback(True)
    else:
        raise QuotaRace("A workspace's quota kept changing under the ticker.")
    for workspace_id in sorted(refused):
        logger.info("schedule ticks of workspace %s refused by the quota", workspace_id)
    return sum(n for per_queue in fired.values() for n in per_queue.values()), selected


def _run(params: dict[str, Any]) -> tuple[int, dict[str, dict[tuple[str, str], int]], set[str]]:
    """The firing statement: (schedules selected, {workspace: {(queue, delivery): jobs}}, refused workspaces)."""
    params = {**params, **{k: sql_id_head(p) for k, p in _HEADS.items()}}
    fired: dict[str, dict[tuple[str, str], int]] = {}
    refused: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute(_FIRE_SQL, params)
        rows = cursor.fetchall()
    selected = rows[0][0]  # the statement always ends with a row holding only the count of selected schedules
    for _count, workspace_id, queue_id, delivery, jobs, refusals in rows:
        if workspace_id is None:
            continue
        if jobs:
            fired.setdefault(workspace_id, {})[(queue_id, delivery)] = jobs
        if refusals:
            refused.add(workspace_id)
    return selected, fired, refused


_HEADS = {"job_head": "job", "event_head": "evt", "execution_head": "exe"}


def _consume_quota(fired: dict[str, dict[tuple[str, str], int]]) -> set[str]:
    """Count the jobs against each workspace's quota and wake the queues' workers (both at COMMIT); returns the
    workspaces the quota refused (the caller then rolls back)."""
    if not fired:
        return set()
    workspaces = sorted(fired)
    queues = []
    for per_queue in fired.values():
        for queue_id, delivery in per_queue:
            remember_delivery(queue_id, delivery)
            queues.append(queue_id)
    params = {
        "period": current_period(),
        "ws": workspaces,
        "counts": [sum(fired[w].values()) for w in workspaces],
    }
    with connection.cursor() as cursor:
        notify = kick_statement(queues)
        if notify is not None:
            cursor.execute(*notify)
        cursor.execute(_QUOTA_SQL, params)
        admitted = {row[0] for row in cursor.fetchall()}
    return set(workspaces) - admitted
