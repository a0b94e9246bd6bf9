"""Pull workers: registration, claims with long-polling, and lease-fenced heartbeat/progress/complete/fail/ack.

Claiming and recording outcomes are the engine's (`job_claim`, `jobs_record_outcomes`): the same SKIP LOCKED
batch claim and fenced batch outcome path that push delivery uses, so pause, concurrency, groups and rate
limits hold for pull queues too. This package adds what only pull workers need: the worker registry
(`workers`), claims across queues with the long-poll wait (`claims`, `longpoll`) and the lease-fenced job
operations (`leases`).
"""

from __future__ import annotations

from jobs.services.pull.claims import (
    MAX_CLAIM_QUEUES,
    ClaimResult,
    job_claim_pull,
    jobs_claim_pull,
    pull_queue_checked,
    pull_queue_get,
    pull_queues_for_claim,
)
from jobs.services.pull.leases import AckItem, job_finish_pull, job_lease_extend, job_progress_set, jobs_ack
from jobs.services.pull.workers import (
    worker_active_counts,
    worker_deregister,
    worker_get,
    worker_heartbeat,
    worker_is_online,
    worker_register,
    workers_reap,
)

__all__ = [
    "MAX_CLAIM_QUEUES",
    "AckItem",
    "ClaimResult",
    "job_claim_pull",
    "job_finish_pull",
    "job_lease_extend",
    "job_progress_set",
    "jobs_ack",
    "jobs_claim_pull",
    "pull_queue_checked",
    "pull_queue_get",
    "pull_queues_for_claim",
    "worker_active_counts",
    "worker_deregister",
    "worker_get",
    "worker_heartbeat",
    "worker_is_online",
    "worker_register",
    "workers_reap",
]
