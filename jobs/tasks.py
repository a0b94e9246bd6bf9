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
    worker_ready,
    worker_shutdown,
)

from config import liveness
from config import logging as log_context
from jobs.services import conveyor, wakeup
from jobs.services.dispatch import clear_kick, send_hints
from jobs.services.engine import jobs_sweep
from jobs.services.pull import workers_reap

logger = logging.getLogger(__name__)


@worker_process_init.connect
def _on_process_init(**kwargs) -> None:
    """A prefork pool process starts. The first one (index 0, which a restarted first process keeps) runs the
    worker's push waker: every listener gets every wake-up, and woken processes of one worker would race for the
    same job; the others take the broker hints, which spread the work once a claim takes a full batch.

    Everything imported at start-up goes out of the garbage collector's reach: Django, Celery and aiohttp leave
    ~10^5 long-lived objects; every full collection walked them all, which cost ~10 % of a delivery batch's CPU
    and added multi-millisecond pauses to the enqueue -> delivery latency."""
    from billiard.process import current_process

    if getattr(current_process(), "index", 0) == 0:
        wakeup.start()
    gc.freeze()


@worker_ready.connect
def _on_worker_ready(**kwargs) -> None:
    """A worker whose pool runs in this process (threads, solo): its push waker, and its start-up heap frozen as
    a prefork pool process's is. A prefork parent does neither: it never delivers, and a thread must not be
    running when it forks."""
    if not _forks:
        wakeup.start()
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
# True in a worker whose pool forks processes (prefork): each pool process starts its own push waker.
_forks = False


@worker_init.connect
def _on_worker_init(sender=None, **kwargs) -> None:
    """A worker starts: deliveries go to the conveyor, and the thread pool keeps a thread for system tasks."""
    from celery.concurrency import get_implementation
    from celery.concurrency.thread import TaskPool as ThreadPool

    global _delivery_gate, _in_worker, _forks
    _in_worker = True

    concurrency = int(getattr(sender, "concurrency", 0) or 0)
    pool = get_implementation(getattr(sender, "pool_cls", "prefork"))
    _forks = isinstance(pool, type) and pool.__module__.startswith("celery.concurrency.prefork")
    conveyor.set_siblings(_forks and concurrency > 1)
    if isinstance(pool, type) and issubclass(pool, ThreadPool) and concurrency >= 2:
        _delivery_gate = threading.BoundedSemaphore(concurrency - 1)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _drain_deliveries(**kwargs) -> None:
    """Warm shutdown (SIGTERM): no more woken claims; let the batches in flight finish, up to
    SPINDLE_DELIVERY_DRAIN_S."""
    wakeup.stop()
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
