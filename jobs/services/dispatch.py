"""Hints after commit (DESIGN.md invariant 1: PostgreSQL is the truth, the broker only carries hints).

Pull queues get a PostgreSQL NOTIFY that wakes long-polling claimers. Push queues get one de-duplicated Celery
task per queue ("jobs.deliver_queue"), or, while workers announce push wakers (jobs.services.wakeup), a NOTIFY
on PUSH_CHANNEL that reaches them with the enqueue's COMMIT, without the broker's round trips. A lost hint or
wake-up costs latency, never a job: the sweeper re-kicks every queue that has ready jobs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from config import db
from config import logging as log_context
from config.routing import system_queue

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "spindle_jobs"
PUSH_CHANNEL = "spindle_push"
# Workers with a push waker set this key (with a TTL) while their LISTEN is in place; enqueuers read it at most
# once per WAKERS_MEMO_S. Per database: NOTIFY reaches only the listeners of the database it is sent in, and
# deployments (or test sessions) may share one Redis.
WAKERS_MEMO_S = 1.0
_wakers_memo: tuple[float, bool] = (0.0, False)
DELIVER_TASK = "jobs.deliver_queue"
# While a hint for a queue is pending, further kicks are dropped. The running task deletes the flag as it
# starts, so a kick that arrives during its work schedules the next run. The TTL bounds the damage of a hint
# lost with its flag still set (the sweeper's next kick after the TTL repairs it).
KICK_TTL_S = 5

# queue id -> delivery mode; a queue's delivery mode never changes after creation.
_DELIVERY: dict[str, str] = {}


def kick_key(queue_id: str) -> str:
    return f"spindle:kick:{queue_id}"


def _deliveries(queue_ids: list[str]) -> dict[str, str]:
    missing = [q for q in queue_ids if q not in _DELIVERY]
    if missing:
        from queues.models import Queue

        if len(_DELIVERY) > 10000:
            _DELIVERY.clear()
        _DELIVERY.update(Queue.objects.filter(id__in=missing).values_list("id", "delivery"))
    return {q: _DELIVERY[q] for q in queue_ids if q in _DELIVERY}


def remember_delivery(queue_id: str, delivery: str) -> None:
    """A caller that holds the queue row saves kick_on_commit its lookup of the delivery mode."""
    _DELIVERY[queue_id] = delivery


def kick_on_commit(queue_ids: Iterable[str]) -> None:
    """After the current transaction commits, tell workers these queues may have ready jobs."""
    statement = kick_statement(queue_ids)
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def kick_statement(queue_ids: Iterable[str]) -> tuple[str, list] | None:
    """kick_on_commit for a caller that batches statements: registers the push hints on commit and returns the
    pull queues' NOTIFY (sql, params), which the caller must run in its transaction (None: nothing to run)."""
    ids = sorted(set(queue_ids))
    if not ids:
        return None
    modes = _deliveries(ids)
    pull = [q for q in ids if modes.get(q) == "pull"]
    push = [q for q in ids if modes.get(q) == "push"]
    # NOTIFY wakes long-polling claimers at commit (none is sent on rollback); without NOTIFY (SQLite) they poll.
    notifications = [(NOTIFY_CHANNEL, q) for q in pull]
    if push and wakers_alive():
        notifications += [(PUSH_CHANNEL, q) for q in push]
    elif push:
        transaction.on_commit(lambda: send_hints(push))
    return db.backend().notify_sql(notifications)


def wakers_key() -> str:
    return f"spindle:push-wakers:{connection.settings_dict['NAME']}"


def wakers_alive() -> bool:
    """Whether some worker announces a push waker (read from the cache at most once per WAKERS_MEMO_S). If the
    cache cannot answer, False: the broker hint works without it."""
    global _wakers_memo
    now = time.monotonic()
    checked, alive = _wakers_memo
    if now - checked < WAKERS_MEMO_S:
        return alive
    try:
        alive = bool(cache.get(wakers_key()))
    except Exception:  # noqa: BLE001
        alive = False
    _wakers_memo = (now, alive)
    return alive


def forget_wakers() -> None:
    """Read the announcement again on the next kick (tests, after clearing the cache)."""
    global _wakers_memo
    _wakers_memo = (0.0, False)


SWEEP_TASK = "jobs.sweep"
# Delayed jobs due within this horizon get a sweep at their run time (a Celery ETA the worker holds in memory),
# so they start within a few milliseconds of run_at instead of up to one beat period later. Later ones, and any
# whose ETA sweep was lost, are promoted by the periodic sweep as before.
PROMPT_SWEEP_HORIZON_S = 60
# Run times are rounded up to this grid and de-duplicated per grid slot across processes.
PROMPT_SWEEP_GRID_MS = 25
# Sweeps requested per enqueue at most (the earliest slots); a batch spread over a minute relies on the beat.
PROMPT_SWEEPS_PER_CALL = 20


def sweep_at_on_commit(run_ats: Iterable[datetime], *, now: datetime) -> None:
    """After commit, ask for a sweep at each of these run times (those due within the horizon)."""
    horizon = now.timestamp() + PROMPT_SWEEP_HORIZON_S
    slots = sorted(
        {
            math.ceil(run_at.timestamp() * 1000 / PROMPT_SWEEP_GRID_MS) * PROMPT_SWEEP_GRID_MS
            for run_at in run_ats
            if run_at.timestamp() <= horizon
        }
    )[:PROMPT_SWEEPS_PER_CALL]
    if slots:
        transaction.on_commit(lambda: _send_sweeps(slots))


def _send_sweeps(slots_ms: list[int]) -> None:
    for slot in slots_ms:
        try:
            if not cache.add(f"spindle:sweep-at:{slot}", 1, timeout=PROMPT_SWEEP_HORIZON_S + 10):
                continue  # another enqueue already asked for a sweep at this time
            # A few ms past the slot: the sweeper compares run_at with the database clock.
            eta = datetime.fromtimestamp((slot + 3) / 1000, UTC)
            current_app.send_task(
                SWEEP_TASK, eta=eta, queue=system_queue(), expires=PROMPT_SWEEP_HORIZON_S + 30
            )
        except Exception:  # noqa: BLE001 - the periodic sweep promotes the jobs anyway
            logger.warning("could not request a prompt sweep", exc_info=True)
            return


def send_hints(queue_ids: Iterable[str]) -> None:
    """Send the de-duplicated deliver task for each push queue (now; callers are outside a transaction)."""
    # The sender's request id rides in the message headers: the worker logs the delivery under it.
    options = {"headers": headers} if (headers := log_context.task_headers()) else {}
    for queue_id in queue_ids:
        try:
            if not cache.add(kick_key(queue_id), 1, timeout=KICK_TTL_S):
                continue
            current_app.send_task(DELIVER_TASK, args=[queue_id], queue=hint_queue(), **options)
        except Exception:  # noqa: BLE001 - a broker outage must not fail the committed request
            # The job is committed; the sweeper re-kicks the queue once the broker is back.
            logger.warning("could not send the delivery hint for %s", queue_id, exc_info=True)
            try:
                cache.delete(kick_key(queue_id))
            except Exception:  # noqa: BLE001
                pass


def hint_queue() -> str:
    """The broker queue workers consume (`-Q`); read per call so tests can point it at their own."""
    return getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"


# A claim the queue's own limits capped (concurrency, rate) leaves ready jobs whose hints were spent: the
# first batch of the queue to finish, in any process, must kick it. The flag says so; a lost flag (Redis
# flushed) costs latency only, the sweeper re-kicks queues with ready jobs. It outlives any delivery's timeout.
CAPPED_TTL_S = 15 * 60


def capped_key(queue_id: str) -> str:
    return f"spindle:capped:{queue_id}"


def mark_capped(queue_id: str) -> None:
    """A claim of this queue was capped by its limits: the next batch to finish kicks it."""
    try:
        cache.set(capped_key(queue_id), 1, timeout=CAPPED_TTL_S)
    except Exception:  # noqa: BLE001 - the sweeper re-kicks the queue
        logger.warning("could not flag %s as capped", queue_id, exc_info=True)


def take_capped(queue_id: str) -> bool:
    """Consume the queue's capped flag (one round trip); True if a claim was capped since the last take.
    If Redis cannot answer, True: a needless kick costs one empty task, a missed one costs latency."""
    try:
        return bool(cache.delete(capped_key(queue_id)))
    except Exception:  # noqa: BLE001
        return True


def clear_kick(queue_id: str) -> None:
    """Called by the deliver task as it starts, so kicks arriving while it works are not lost."""
    try:
        cache.delete(kick_key(queue_id))
    except Exception:  # noqa: BLE001
        logger.warning("could not clear the kick flag of %s", queue_id, exc_info=True)


# queue id -> workspace id; a queue never changes workspace. The conveyor's in-flight limits are per workspace.
_WORKSPACE: dict[str, str] = {}


def workspace_of(queue_id: str) -> str | None:
    """The queue's workspace id (cached in the process), None if the queue is gone."""
    if queue_id not in _WORKSPACE:
        from queues.models import Queue

        if len(_WORKSPACE) > 10000:
            _WORKSPACE.clear()
        ws = Queue.objects.filter(pk=queue_id).values_list("workspace_id", flat=True).first()
        if ws is None:
            return None
        _WORKSPACE[queue_id] = ws
    return _WORKSPACE[queue_id]
