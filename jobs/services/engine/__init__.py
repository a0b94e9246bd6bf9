"""The job lifecycle engine: claim (leases), outcomes (fenced, batched), flows, the sweeper, backoff.

Every decision about "due" and "expired" uses the database clock (`db_now()`), never the caller's clock.
Hot paths are set-based: one claim takes a batch of rows, one outcome call writes a whole batch. Database
differences sit behind config.db. Modules: `claim` (+ `claim_sql`, the one-round-trip claim), `outcomes`
(+ `finish`, `writes`), `flows`, `sweeper` (+ `quarantine`, bad rows), `backoff`, `rows`, `common`.
"""

from __future__ import annotations

from jobs.services.engine.backoff import compute_backoff_ms
from jobs.services.engine.claim import PushClaim, job_claim, job_claim_push, job_claim_push_batch
from jobs.services.engine.common import MAX_DEFERRAL_S, RESPONSE_BODY_MAX, Outcome, OutcomeKind, db_now
from jobs.services.engine.flows import jobs_release_parents
from jobs.services.engine.outcomes import (
    jobs_deliver_outcomes,
    jobs_record_outcomes,
    jobs_record_pull_outcomes,
)
from jobs.services.engine.quarantine import jobs_quarantine_bad_datetimes
from jobs.services.engine.rows import job_get_fast
from jobs.services.engine.sweeper import jobs_sweep

__all__ = [
    "MAX_DEFERRAL_S",
    "RESPONSE_BODY_MAX",
    "Outcome",
    "OutcomeKind",
    "PushClaim",
    "compute_backoff_ms",
    "db_now",
    "job_claim",
    "job_claim_push",
    "job_claim_push_batch",
    "job_get_fast",
    "jobs_deliver_outcomes",
    "jobs_quarantine_bad_datetimes",
    "jobs_record_outcomes",
    "jobs_record_pull_outcomes",
    "jobs_release_parents",
    "jobs_sweep",
]
