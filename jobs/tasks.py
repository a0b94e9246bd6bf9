"""Thin Celery tasks of the jobs app: hints in, services do the work (PostgreSQL is the truth)."""

from __future__ import annotations

import gc
import logging
import threading

from celery import shared_task
from celery.signals import (
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from config import liveness
from config import logging as log_context
from jobs.services import conveyor
from jobs.services.dispatch import clear_kick, send_hints
from jobs.services.engine import jobs_sweep
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
    conveyor.recycle_connections()


# Set at worker start with the thread pool: deliver tasks run on at most concurrency - 1 threads at once, so one
# thread is always free for the system queue (sweeper, ticker, fan-out), however many hints are queued.
_delivery_gate: threading.BoundedSemaphore | None = None
# True in a worker (set at its start, inherited by prefork children): batches go to the conveyor. Called
# in-process (tests, eager calls, a shell), the task delivers and records before it returns, as before.
_in_worker = False


@worker_init.connect
def _on_worker_init(sender=None, **kwargs) -> None:
    """A worker starts: deliveries go to the conveyor, and the thread pool keeps a thread for system tasks."""
    from celery.concurrency import get_implementation
    from celery.concurrency.thread import TaskPool as ThreadPool

    global _delivery_gate, _in_worker
    _in_worker = True

    concurrency = int(getattr(sender, "concurrency", 0) or 0)
    pool = get_implementation(getattr(sender, "pool_cls", "prefork"))
    if isinstance(pool, type) and issubclass(pool, ThreadPool) and concurrency >= 2:
        _delivery_gate = threading.BoundedSemaphore(concurrency - 1)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _drain_deliveries(**kwargs) -> None:
    """Warm shutdown (SIGTERM): let the batches in flight finish, up to SPINDLE_DELIVERY_DRAIN_S."""
    conveyor.drain()


@shared_task(name="jobs.deliver_queue", ignore_result=True)
def deliver_queue(queue_id: str) -> int:
    """Claim a batch of a push queue and hand it to this process's conveyor (which delivers, records, re-kicks)."""
    # Cleared first: a kick that arrives while this batch is in flight schedules the next run.
    clear_kick(queue_id)
    # The claim's lines carry the queue beside the request id the hint brought (config/logging.py).
    token = log_context.bind(queue_id=queue_id)
    try:
        return _gated_claim(queue_id)
    finally:
        log_context.reset(token)


def _gated_claim(queue_id: str) -> int:
    gate = _delivery_gate
    if gate is not None and not gate.acquire(blocking=False):
        # Every delivery thread is claiming: leave this thread to the system queue, come back through the broker.
        send_hints([queue_id])
        return 0
    try:
        return _claim_and_hand_over(queue_id)
    finally:
        if gate is not None:
            gate.release()


def _claim_and_hand_over(queue_id: str) -> int:
    # In a worker the conveyor's loop delivers; called in-process the batch is delivered and recorded here.
    return conveyor.conveyor().claim_and_carry(queue_id, here=not _in_worker)


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
    # /readyz: a recent sweep shows a worker alive (the database check covers a sweep that failed for it).
    liveness.mark("sweeper")
    return result
