"""Thin Celery tasks of the jobs app: hints in, services do the work (PostgreSQL is the truth)."""

from __future__ import annotations

import gc
import logging

from celery import shared_task
from celery.signals import task_prerun, worker_process_init
from django.conf import settings
from django.db import connections

from jobs.services import delivery
from jobs.services.dispatch import (
    clear_kick,
    delivery_slots_acquire,
    delivery_slots_hold,
    delivery_slots_release,
    send_hints,
)
from jobs.services.engine import job_claim_push, jobs_deliver_outcomes, jobs_sweep
from jobs.services.pull import workers_reap

logger = logging.getLogger(__name__)


@worker_process_init.connect
def _freeze_startup_heap(**kwargs) -> None:
    """Move everything imported at start-up out of the garbage collector's reach.

    Django, Celery and aiohttp leave ~10^5 long-lived objects; every full collection walked them all, which cost
    ~10 % of a delivery batch's CPU and added multi-millisecond pauses to the enqueue -> delivery latency.
    """
    gc.freeze()


@task_prerun.connect
def _recycle_connections(**kwargs) -> None:
    """Before each task, drop a connection that errored or outlived CONN_MAX_AGE (Django does this per request).

    Celery's own fixup would close every connection around every task; settings.CELERY_DB_REUSE_MAX turns that
    off, because reconnecting cost more than the whole claim of a small batch. A task applied in-process inside a
    transaction (tests, eager calls) keeps its connection: closing it would break the caller's transaction.
    """
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


@shared_task(name="jobs.deliver_queue", ignore_result=True)
def deliver_queue(queue_id: str) -> int:
    """Claim a batch of a push queue, deliver it concurrently, record every outcome at once, re-kick."""
    # Cleared first: a kick that arrives while this batch is in flight schedules the next run.
    clear_kick(queue_id)
    # Per-queue and per-workspace caps on deliveries in flight (fairness, see dispatch): none free -> the tasks
    # holding them re-kick this queue when they finish.
    slots = delivery_slots_acquire(queue_id)
    if slots is None:
        return 0
    more = False
    try:
        # One round trip: the queue row (locked, so pause and concurrency are exact) and the leased batch.
        queue, jobs = job_claim_push(queue_id=queue_id, limit=max(1, settings.SPINDLE_DELIVERY_BATCH))
        if queue is None or not jobs:
            return 0
        delivery_slots_hold(slots, queue.lease_ms / 1000)
        if len(jobs) >= min(settings.SPINDLE_DELIVERY_BATCH, queue.concurrency):
            # More may be ready: let another worker process claim the next batch while this one is in flight.
            send_hints([queue_id])
        outcomes = delivery.deliver_batch(queue, jobs)
        lost, more = jobs_deliver_outcomes(outcomes=outcomes, queue_id=queue_id)
        if lost:
            logger.info("queue %s: %d outcome(s) fenced off (lease lost)", queue_id, len(lost))
        return len(jobs)
    finally:
        # Released before the re-kick, so the next task finds a free slot.
        delivery_slots_release(slots)
        if more:
            send_hints([queue_id])


@shared_task(name="jobs.sweep", ignore_result=True)
def sweep() -> dict:
    """Beat: promote due delayed jobs, rescue expired leases, re-kick queues whose hint was lost."""
    result: dict = {}
    # Each part on its own: one failing (a bad row, a lock timeout) must not starve the other.
    for name, part in (("jobs", jobs_sweep), ("workers", workers_reap)):
        try:
            value = part()
        except Exception:  # noqa: BLE001 - logged; the next beat tick tries again
            logger.exception("sweep: %s part failed", name)
            continue
        result.update(value if isinstance(value, dict) else {"workers_reaped": value})
    return result
