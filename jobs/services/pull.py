"""Pull workers: registration, claims with long-polling, and lease-fenced heartbeat/progress/complete/fail/ack.

Claiming and recording outcomes are the engine's (`job_claim`, `jobs_record_outcomes`): the same SKIP LOCKED
batch claim and fenced batch outcome path that push delivery uses, so pause, concurrency, groups and rate
limits hold for pull queues too. This module adds what only pull workers need: the worker registry, the
long-poll wait (PostgreSQL LISTEN on `spindle_jobs`, one shared listening connection per process) and the
fenced conditional UPDATEs for heartbeat and progress.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Workspace
from config.exceptions import InvalidState, LeaseLost, NotFound, ValidationFailed
from jobs.models import Execution, ExecutionStatus, Job, JobState, Worker
from jobs.services.dispatch import kick_on_commit
from jobs.services.engine import Outcome, job_claim, job_get_fast, jobs_record_outcomes
from jobs.services.enqueue import queue_by_name
from jobs.services.events import PendingEvent, events_emit
from queues.models import Queue

logger = logging.getLogger(__name__)

# The engine sends one NOTIFY per committing transaction on this channel, payload = the queue id.
LISTEN_CHANNEL = "spindle_jobs"
# SQLite has no LISTEN: the embedded mode re-tries the claim this often while a long-poll lasts.
SQLITE_POLL_S = 0.1
# A multi-queue claim costs one claim query per queue: bounded.
MAX_CLAIM_QUEUES = 20
# Stale workers reaped per sweep; the rest wait for the next sweep (a second later).
REAP_BATCH = 100


@dataclass(frozen=True)
class AckItem:
    """One outcome of a batch acknowledgement (validated by the view)."""

    id: str
    lease_token: str
    success: bool
    result: Any = None
    error: dict[str, Any] | None = None
    retry: bool = True


# --- workers --------------------------------------------------------------------------------------


def worker_register(
    *,
    workspace: Workspace,
    name: str,
    queues: list[str],
    hostname: str = "",
    concurrency: int = 1,
    metadata: dict[str, Any] | None = None,
) -> Worker:
    """Register a pull worker; it starts with no active jobs."""
    return Worker.objects.create(
        workspace=workspace,
        name=name,
        queues=queues,
        hostname=hostname,
        concurrency=concurrency,
        metadata=metadata or {},
    )


def worker_get(*, workspace: Workspace, worker_id: str) -> Worker:
    worker = Worker.objects.filter(workspace=workspace, id=worker_id).first()
    if worker is None:
        raise NotFound("No such worker.")
    return worker


def worker_heartbeat(*, workspace: Workspace, worker_id: str) -> Worker:
    """Mark the worker as seen now."""
    now = timezone.now()
    if not Worker.objects.filter(workspace=workspace, id=worker_id).update(last_seen_at=now):
        raise NotFound("No such worker.")
    return worker_get(workspace=workspace, worker_id=worker_id)


def worker_active_counts(*, workspace: Workspace, worker_ids: list[str]) -> dict[str, int]:
    """Active jobs per worker in one GROUP BY (served by the partial index on active leases)."""
    if not worker_ids:
        return {}
    rows = (
        Job.objects.filter(workspace=workspace, state=JobState.ACTIVE, worker_id__in=worker_ids)
        .values("worker_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["worker_id"]: row["n"] for row in rows}


def worker_is_online(worker: Worker, *, now: datetime | None = None) -> bool:
    """Online while its last sign of life (register, heartbeat, claim, job heartbeat) is younger than the
    heartbeat timeout (SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S)."""
    now = now or timezone.now()
    return now - worker.last_seen_at <= timedelta(seconds=settings.SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S)


def workers_reap(*, now: datetime | None = None, limit: int = REAP_BATCH) -> int:
    """Deregister workers silent for longer than SPINDLE_WORKER_REAP_AFTER_S (the sweeper calls this): each is
    deleted and its leases are released as on DELETE /v1/workers/{id}. Returns how many were reaped."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SPINDLE_WORKER_REAP_AFTER_S)
    # Index jobs_worker_last_seen: the probe costs nothing while no worker is stale.
    stale = list(
        Worker.objects.filter(last_seen_at__lt=cutoff)
        .select_related("workspace")
        .order_by("last_seen_at")[:limit]
    )
    reaped = 0
    for worker in stale:
        try:
            worker_deregister(workspace=worker.workspace, worker_id=worker.id, reason="worker_reaped", seen_before=cutoff)
            reaped += 1
        except NotFound:
            pass  # deregistered, or it came back to life, since we looked
    return reaped


def worker_deregister(
    *, workspace: Workspace, worker_id: str, reason: str = "worker_deregistered", seen_before: datetime | None = None
) -> list[str]:
    """Delete the worker and release its leases as if they had expired: each active job goes back to
    `waiting` (or to `failed` when its attempts are used up) and its attempt is recorded as `timeout`
    (`dead_letter`). Returns the released job ids. `seen_before` (reaping): only if still silent since then."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        locked = Worker.objects.select_for_update().filter(workspace=workspace, id=worker_id)
        if seen_before is not None:
            locked = locked.filter(last_seen_at__lt=seen_before)
        worker = locked.first()
        if worker is None:
            raise NotFound("No such worker.")
        # Lock in pk order, like the engine, so a concurrent batch ack cannot deadlock with us; an ack that
        # commits first wins and its jobs are no longer active here.
        held = list(
            Job.objects.select_for_update(of=("self",))
            .filter(workspace=workspace, worker_id=worker_id, state=JobState.ACTIVE)
            .order_by("id")
            .values_list("id", "queue_id", "queue__name", "execution_id", "attempts", "max_attempts")
        )
        if held:
            message = {
                "worker_deregistered": "The worker deregistered; its lease was released.",
                "worker_reaped": "The worker stopped sending heartbeats; its lease was released.",
            }[reason]
            error = {"message": message, "type": reason}
            released = [row for row in held if row[4] < row[5]]
            dead = [row for row in held if row[4] >= row[5]]
            common = {"lease_token": None, "lease_expires_at": None, "worker_id": None, "updated_at": now,
                      "last_error": error}
            events: list[PendingEvent] = []
            if released:
                Job.objects.filter(id__in=[r[0] for r in released]).update(
                    state=JobState.WAITING, run_at=now, **common
                )
                Execution.objects.filter(id__in=[r[3] for r in released if r[3]]).update(
                    status=ExecutionStatus.TIMEOUT, completed_at=now, error=error
                )
            if dead:
                Job.objects.filter(id__in=[r[0] for r in dead]).update(
                    state=JobState.FAILED, finished_at=now, **common
                )
                Execution.objects.filter(id__in=[r[3] for r in dead if r[3]]).update(
                    status=ExecutionStatus.DEAD_LETTER, completed_at=now, error=error
                )
            data = {"reason": reason, "worker_id": worker_id}
            for job_id, _queue_id, queue_name, _exe, _attempts, _max in held:
                events.append(PendingEvent(workspace.id, "job:stalled", queue_name, job_id, data))
            for job_id, _queue_id, queue_name, _exe, _attempts, _max in dead:
                events.append(PendingEvent(workspace.id, "job:failed", queue_name, job_id, {**data, "error": error}))
                events.append(PendingEvent(workspace.id, "job:dead", queue_name, job_id, {**data, "error": error}))
            events_emit(events, now=now)
            # The released jobs are ready again: wake long-polling claimers (one NOTIFY per queue).
            kick_on_commit(sorted({row[1] for row in released}))
        worker.delete()
    return [row[0] for row in held]


# --- claims ---------------------------------------------------------------------------------------


def pull_queue_get(*, workspace: Workspace, queue_name: str) -> Queue:
    """The workspace's queue by name, refusing push queues (their jobs belong to the delivery engine)."""
    queue = queue_by_name(workspace_id=workspace.id, name=queue_name)
    if queue is None:
        raise NotFound("No such queue.")
    if queue.delivery != Queue.Delivery.PULL:
        raise InvalidState(
            "This queue delivers by push; only pull queues hand jobs to workers.",
            details={"delivery": queue.delivery},
        )
    return queue


@dataclass(frozen=True)
class ClaimResult:
    """What a claim leased, and whether a wanted long-poll was refused by the budget (it then returned at once)."""

    jobs: list[Job]
    queue_names: dict[str, str]  # queue id -> name, to render each job's `queue`
    long_poll_refused: bool = False


def job_claim_pull(
    *,
    workspace: Workspace,
    queue_name: str,
    limit: int = 1,
    lease_ms: int | None = None,
    wait_ms: int = 0,
    worker_id: str | None = None,
) -> tuple[Queue, list[Job]]:
    """Lease up to `limit` ready jobs; with `wait_ms`, wait for jobs to become ready (long-poll)."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    result = jobs_claim_pull(
        workspace=workspace, queues=[queue], limit=limit, lease_ms=lease_ms, wait_ms=wait_ms, worker_id=worker_id
    )
    return queue, result.jobs


def pull_queues_for_claim(
    *, workspace: Workspace, queue_names: list[str] | None, worker_id: str | None
) -> list[Queue]:
    """The queues of a multi-queue claim: the names given (each must be a pull queue of the workspace, else 400
    VALIDATION_ERROR on `queues`), or without names the worker's registered queues (its unknown or push queues
    are skipped: a queue deleted after registration must not break the worker)."""
    explicit = queue_names is not None
    if not explicit:
        if worker_id is None:
            raise ValidationFailed(details={"queues": ["Give `queues`, or a `worker_id` whose queues are claimed."]})
        registered = Worker.objects.filter(workspace=workspace, id=worker_id).values_list("queues", flat=True).first()
        if registered is None:
            raise ValidationFailed(details={"worker_id": ["Unknown worker."]})
        queue_names = [q for q in registered or [] if isinstance(q, str)][:MAX_CLAIM_QUEUES]
    names = list(dict.fromkeys(queue_names or []))
    found = {q.name: q for q in Queue.objects.filter(workspace=workspace, name__in=names)}
    if explicit:
        problems = [f"Unknown queue '{n}'." for n in names if n not in found]
        problems += [
            f"Queue '{n}' delivers by push; only pull queues hand jobs to workers."
            for n in names
            if n in found and found[n].delivery != Queue.Delivery.PULL
        ]
        if problems:
            raise ValidationFailed(details={"queues": problems})
    queues = [found[n] for n in names if n in found and found[n].delivery == Queue.Delivery.PULL]
    if not queues:
        raise ValidationFailed(details={"queues": ["No pull queue to claim from."]})
    return queues


def jobs_claim_pull(
    *,
    workspace: Workspace,
    queues: list[Queue],
    limit: int = 1,
    lease_ms: int | None = None,
    wait_ms: int = 0,
    worker_id: str | None = None,
) -> ClaimResult:
    """Lease up to `limit` ready jobs from one or several pull queues of the workspace, fairly across them (each
    queue's pause, concurrency, group caps and rate limit hold: every per-queue claim is the engine's). With
    `wait_ms`, wait until one of the queues has a ready job or the time is up, within the long-poll budget."""
    if worker_id is not None:
        # A claim is a sign of life, so it counts as a worker heartbeat.
        if not Worker.objects.filter(workspace=workspace, id=worker_id).update(last_seen_at=timezone.now()):
            raise ValidationFailed(details={"worker_id": ["Unknown worker."]})
    names = {q.id: q.name for q in queues}

    def claim() -> list[Job]:
        return _claim_fair(queues, limit=limit, lease_ms=lease_ms, worker_id=worker_id)

    jobs = claim()
    if jobs or wait_ms <= 0:
        return ClaimResult(jobs, names)
    with _long_poll_slot(workspace_id=workspace.id, wait_ms=wait_ms) as granted:
        if not granted:
            # Over budget: answer now with what is available (nothing) instead of pinning a web thread.
            return ClaimResult([], names, long_poll_refused=True)
        return ClaimResult(_wait_and_claim(claim, [q.id for q in queues], wait_ms), names)


_rotation = itertools.count()


def _claim_fair(queues: list[Queue], *, limit: int, lease_ms: int | None, worker_id: str | None) -> list[Job]:
    """Split `limit` across the queues: each round offers every queue an equal share, starting from a queue that
    rotates per call (so no queue is always served first); queues that filled their share get the rest."""
    start = next(_rotation) % len(queues)
    pending = queues[start:] + queues[:start]
    jobs: list[Job] = []
    remaining = limit
    while remaining > 0 and pending:
        share = max(1, remaining // len(pending))
        still_ready: list[Queue] = []
        for queue in pending:
            if remaining <= 0:
                break
            want = min(share, remaining)
            got = job_claim(queue=queue, limit=want, lease_ms=lease_ms or queue.lease_ms, worker_id=worker_id)
            jobs += got
            remaining -= len(got)
            if len(got) == want:
                still_ready.append(queue)  # it may have more
        pending = still_ready
    return jobs


def _wait_and_claim(claim: Callable[[], list[Job]], queue_ids: list[str], wait_ms: int) -> list[Job]:
    deadline = time.monotonic() + wait_ms / 1000
    jobs: list[Job] = []
    # SQLite has no LISTEN. A caller that holds a transaction (only tests do) would not see other
    # transactions' jobs through a notification anyway, so both re-try the claim on a short timer.
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        while not jobs and time.monotonic() < deadline:
            time.sleep(min(SQLITE_POLL_S, max(0.0, deadline - time.monotonic())))
            jobs = claim()
        return jobs

    listener = _listener()
    wakeup = listener.subscribe(*queue_ids)
    try:
        while True:
            # Subscribed before this claim: a NOTIFY committed after it sets `wakeup`, so none is missed.
            wakeup.clear()
            jobs = claim()
            remaining = deadline - time.monotonic()
            if jobs or remaining <= 0:
                return jobs
            wakeup.wait(remaining)
    finally:
        listener.unsubscribe(wakeup, *queue_ids)


# --- the long-poll budget -------------------------------------------------------------------------
#
# A long-poll holds a web thread (gunicorn gthread) for up to 20 s. Without a bound, a few workers polling empty
# queues pin every thread and /v1/health times out. Two budgets, checked only when a claim found nothing and the
# caller asked to wait: at most SPINDLE_LONGPOLL_MAX_PER_PROCESS waiting claims per web process (default 4, half
# of the Procfile's 8 threads), and at most SPINDLE_LONGPOLL_MAX_PER_WORKSPACE per workspace across all processes
# (slots in the shared cache, so one tenant cannot take the whole process budget). Over budget the claim answers
# at once with an empty `data` and the header `Spindle-Long-Poll: refused`.

_budget_lock = threading.Lock()
_budget: tuple[int, threading.BoundedSemaphore] | None = None
LONG_POLL_SLOT_KEY = "spindle:longpoll:{workspace_id}:{slot}"


def _process_budget() -> threading.BoundedSemaphore:
    global _budget
    size = max(1, int(getattr(settings, "SPINDLE_LONGPOLL_MAX_PER_PROCESS", 4)))
    with _budget_lock:
        if _budget is None or _budget[0] != size:
            _budget = (size, threading.BoundedSemaphore(size))
        return _budget[1]


@contextmanager
def _long_poll_slot(*, workspace_id: str, wait_ms: int) -> Iterator[bool]:
    """Yields True while this request holds a process slot and a workspace slot, False when over budget."""
    semaphore = _process_budget()
    if not semaphore.acquire(blocking=False):
        yield False
        return
    held: str | None = None
    try:
        # Each slot key expires a little after the longest wait, so a process killed mid-poll frees it.
        ttl_s = int(wait_ms / 1000) + 5
        token = secrets.token_hex(8)
        for slot in range(max(1, int(getattr(settings, "SPINDLE_LONGPOLL_MAX_PER_WORKSPACE", 2)))):
            key = LONG_POLL_SLOT_KEY.format(workspace_id=workspace_id, slot=slot)
            if cache.add(key, token, timeout=ttl_s):
                held = key
                break
        yield held is not None
    finally:
        if held is not None:
            cache.delete(held)
        semaphore.release()


# --- lease-fenced job operations ------------------------------------------------------------------


def _fenced(*, workspace: Workspace, queue: Queue, job_id: str, lease_token: str):
    # Fencing: only the current holder's token matches; a re-leased job has a new token.
    return Job.objects.filter(
        id=job_id, workspace=workspace, queue=queue, state=JobState.ACTIVE, lease_token=lease_token
    )


def _lost_or_missing(*, workspace: Workspace, queue: Queue, job_id: str) -> None:
    state = Job.objects.filter(id=job_id, workspace=workspace, queue=queue).values_list("state", flat=True).first()
    if state is None:
        raise NotFound("No such job.")
    raise LeaseLost(details={"job_id": job_id, "state": state})


def job_lease_extend(
    *, workspace: Workspace, queue_name: str, job_id: str, lease_token: str, lease_ms: int | None = None
) -> tuple[Queue, Job]:
    """Extend the lease of a job the caller holds (fenced by `lease_token`)."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    now = timezone.now()
    expires = now + timedelta(milliseconds=lease_ms or queue.lease_ms)
    if not _fenced(workspace=workspace, queue=queue, job_id=job_id, lease_token=lease_token).update(
        lease_expires_at=expires, updated_at=now
    ):
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    job = Job.objects.get(pk=job_id)
    if job.worker_id:
        Worker.objects.filter(workspace=workspace, id=job.worker_id).update(last_seen_at=now)
    return queue, job


def job_progress_set(
    *, workspace: Workspace, queue_name: str, job_id: str, lease_token: str, progress: Any
) -> tuple[Queue, Job]:
    """Record a held job's progress and emit `job:progress` in the same transaction."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    now = timezone.now()
    with transaction.atomic(durable=True):
        updated = _fenced(workspace=workspace, queue=queue, job_id=job_id, lease_token=lease_token).update(
            progress=progress, updated_at=now
        )
        if updated:
            events_emit(
                [
                    PendingEvent(
                        workspace_id=workspace.id,
                        type="job:progress",
                        queue_name=queue.name,
                        job_id=job_id,
                        data={"progress": progress},
                    )
                ],
                now=now,
            )
    if not updated:
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    return queue, Job.objects.get(pk=job_id)


def _elapsed_ms(started_at: datetime | None, now: datetime) -> int | None:
    """An attempt's duration (finished - started, API.md Executions `duration_ms`); never negative on clock skew."""
    if started_at is None:
        return None
    return max(0, int((now - started_at).total_seconds() * 1000))


def job_finish_pull(
    *,
    workspace: Workspace,
    queue_name: str,
    job_id: str,
    lease_token: str,
    success: bool,
    result: Any = None,
    error: dict[str, Any] | None = None,
    retry: bool = True,
) -> tuple[Queue, Job]:
    """Complete or fail one held job through the engine's fenced outcome path; stale token -> LEASE_LOST."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    # No existence check up front: the outcome path is scoped to this queue, and a job it does not find
    # (another queue's or workspace's, or unknown) is told apart from a lost lease afterwards.
    # The claim stamped the attempt's start on the job; the engine writes this duration to the execution
    # and to the queue's minute rollup (metrics avg/p95). Primary-key lookup; a stale token finds nothing.
    started_at = (
        Job.objects.filter(pk=job_id, workspace=workspace, queue=queue, lease_token=lease_token)
        .values_list("started_at", flat=True)
        .first()
    )
    outcome = Outcome(
        job_id=job_id,
        lease_token=lease_token,
        kind="success" if success else "failure",
        result=result if success else None,
        error=None if success else error,
        retry=retry,
        duration_ms=_elapsed_ms(started_at, timezone.now()),
    )
    if jobs_record_outcomes(outcomes=[outcome], workspace_id=workspace.id, queue_id=queue.id):
        _lost_or_missing(workspace=workspace, queue=queue, job_id=job_id)
    job = job_get_fast(job_id)
    if job is None:
        raise NotFound("No such job.")  # deleted by a cascade right after the outcome was written
    return queue, job


def jobs_ack(*, workspace: Workspace, queue_name: str, items: list[AckItem]) -> tuple[int, list[str]]:
    """Record a batch of outcomes in one engine transaction. Returns (acked, lease-lost ids in input order);
    ids that are not jobs of this queue are listed as lease-lost too, and nothing is written for them."""
    queue = pull_queue_get(workspace=workspace, queue_name=queue_name)
    if not items:
        return 0, []
    ids = [item.id for item in items]
    # The same read gives each attempt's start, for its `duration_ms` (see job_finish_pull).
    started = dict(Job.objects.filter(workspace=workspace, queue=queue, id__in=ids).values_list("id", "started_at"))
    known = set(started)
    now = timezone.now()
    outcomes = [
        Outcome(
            job_id=item.id,
            lease_token=item.lease_token,
            kind="success" if item.success else "failure",
            result=item.result if item.success else None,
            error=None if item.success else item.error,
            retry=item.retry,
            duration_ms=_elapsed_ms(started[item.id], now),
        )
        for item in items
        if item.id in known
    ]
    lost = set(jobs_record_outcomes(outcomes=outcomes, workspace_id=workspace.id)) if outcomes else set()
    lease_lost = [job_id for job_id in ids if job_id not in known or job_id in lost]
    return len(ids) - len(lease_lost), lease_lost


# --- the long-poll listener -----------------------------------------------------------------------


class _JobListener:
    """One LISTEN connection per process shared by every waiting claim, so a hundred idle long-polls hold
    one PostgreSQL connection, not a hundred. A daemon thread reads notifications and wakes the waiters of
    the notified queue; after a (re)connect it wakes everyone, since notifications may have been missed."""

    def __init__(self, conninfo: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spindle-pull-listener", daemon=True)
        self._thread.start()

    def subscribe(self, *queue_ids: str) -> threading.Event:
        """One event woken by a NOTIFY for any of the queues."""
        event = threading.Event()
        with self._lock:
            for queue_id in queue_ids:
                self._waiters.setdefault(queue_id, set()).add(event)
        # Until LISTEN is in place a NOTIFY could be missed; the caller claims again after this returns.
        self._listening.wait(timeout=2.0)
        return event

    def unsubscribe(self, event: threading.Event, *queue_ids: str) -> None:
        with self._lock:
            for queue_id in queue_ids:
                waiters = self._waiters.get(queue_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[queue_id]

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _wake(self, queue_id: str | None) -> None:
        with self._lock:
            if queue_id is None:
                events = [e for waiters in self._waiters.values() for e in waiters]
            else:
                events = list(self._waiters.get(queue_id, ()))
        for event in events:
            event.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {LISTEN_CHANNEL}")
                    self._listening.set()
                    self._wake(None)
                    while not self._stopping.is_set():
                        # The timeout only bounds how long a stop() waits; wake-ups arrive as they come.
                        for notify in conn.notifies(timeout=0.5):
                            self._wake(notify.payload)
            except psycopg.Error:
                logger.warning("pull listener connection lost; reconnecting", exc_info=True)
                self._listening.clear()
                self._wake(None)
                self._stopping.wait(0.5)
        self._listening.clear()


_listener_lock = threading.Lock()
_listener_instance: _JobListener | None = None


def _listener() -> _JobListener:
    global _listener_instance
    with _listener_lock:
        if _listener_instance is None:
            db = connection.settings_dict
            conninfo = {
                "dbname": db["NAME"],
                "user": db.get("USER") or None,
                "password": db.get("PASSWORD") or None,
                "host": db.get("HOST") or None,
                "port": db.get("PORT") or None,
            }
            _listener_instance = _JobListener({k: v for k, v in conninfo.items() if v is not None})
        return _listener_instance


def pull_listener_stop() -> None:
    """Close this process's LISTEN connection (tests call it so the test database can be dropped)."""
    global _listener_instance
    with _listener_lock:
        instance, _listener_instance = _listener_instance, None
    if instance is not None:
        instance.stop()
