"""Bad rows (issue 9): unfinished jobs whose run_at or lease expiry lies outside what the driver can load.

A run_at stored before input validation existed (year 0 in UTC) is a valid timestamptz that psycopg cannot
load; one such row failed the whole claim or sweep it was part of. These jobs are failed set-based, in SQL that
never converts the bad values in Python.
"""

from __future__ import annotations

import logging
from functools import cache

from django.db import connection

from config import db
from jobs.services.engine.common import SWEEP_BATCH, atomic

logger = logging.getLogger(__name__)


@cache
def _quarantine_sql() -> str:
    backend = db.backend()
    low, high = backend.DATETIME_MIN_SQL, backend.DATETIME_MAX_SQL
    return f"""
WITH bad AS (
    SELECT id FROM jobs_job
    WHERE state IN ('waiting', 'delayed', 'active') AND (%(queue)s::text IS NULL OR queue_id = %(queue)s::text)
      AND (run_at NOT BETWEEN {low} AND {high} OR lease_expires_at NOT BETWEEN {low} AND {high})
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), failed AS (
    UPDATE jobs_job j SET
        state = 'failed', finished_at = now(), updated_at = now(), lease_token = NULL, lease_expires_at = NULL,
        worker_id = NULL, run_at = {backend.clamp_datetime("j.run_at")},
        last_error = jsonb_build_object(
            'type', 'invalid_datetime',
            'message', 'The job has a date outside 1970..9999 (stored before input validation existed); '
                       'it was failed so that it cannot stop the engine. Enqueue it again with a valid run_at.')
    FROM bad WHERE j.id = bad.id
    RETURNING j.id, j.execution_id
), exe AS (
    UPDATE jobs_execution e SET status = 'failed', completed_at = now(),
        error = jsonb_build_object('type', 'invalid_datetime', 'message', 'The job was quarantined.')
    FROM failed WHERE e.id = failed.execution_id AND e.status = 'running'
)
SELECT count(*) FROM failed
"""


def jobs_quarantine_bad_datetimes(*, queue_id: str | None = None, limit: int = SWEEP_BATCH) -> int:
    """Fail the unfinished jobs whose run_at or lease expiry lies outside what the engine can load.

    Not on the hot path: the sweeper calls it only after a step failed (the scan has no index for waiting
    rows). The check is written in the set-based dialect; on SQLite it does nothing.
    """
    if not db.backend().SET_BASED:
        return 0
    try:
        with atomic(), connection.cursor() as cursor:
            cursor.execute(_quarantine_sql(), {"queue": queue_id, "limit": limit})
            count = int(cursor.fetchone()[0])
    except Exception:  # noqa: BLE001 - the per-queue retry that follows still isolates the failure
        logger.exception("sweeper: quarantine of out-of-range datetimes failed")
        return 0
    if count:
        logger.warning(
            "sweeper: failed %d job(s) with out-of-range datetimes (last_error invalid_datetime)", count
        )
    return count
