"""Pull workers: registration, claims with long-polling, and lease-fenced heartbeat/progress/complete/fail/ack.

Claiming and recording outcomes are the engine's (`job_claim`, `jobs_record_outcomes`): the same SKIP LOCKED
batch claim and fenced batch outcome path that push delivery uses, so pause, concurrency, groups and rate
limits hold for pull queues too. This module adds what only pull workers need: the worker registry, the
long-poll wait (PostgreSQL LISTEN on `spindle_jobs`, one shared listening connection per process) and the
fenced conditional UPDATEs for heartbeat and progress.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
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


def worker_deregister(*, workspace: Workspace, worker_id: str) -> list[str]:
    """Delete the worker and release its leases as if they had expired: each active job goes back to
    `waiting` (or to `failed` when its attempts are used up) and its attempt is recorded as `timeout`
    (`dead_letter`). Returns the released job ids."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        worker = Worker.objects.select_for_update().filter(workspace=workspace, id=worker_id).first()
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
            error = {"message": "The worker deregistered; its lease was released.", "type": "worker_deregistered"}
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
            data = {"reason": "worker_deregistered", "worker_id": worker_id}
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
    if worker_id is not None:
        # A claim is a sign of life, so it counts as a worker heartbeat.
        if not Worker.objects.filter(workspace=workspace, id=worker_id).update(last_seen_at=timezone.now()):
            raise ValidationFailed(details={"worker_id": ["Unknown worker."]})
    lease_ms = lease_ms or queue.lease_ms

    def claim() -> list[Job]:
        return job_claim(queue=queue, limit=limit, lease_ms=lease_ms, worker_id=worker_id)

    jobs = claim()
    if jobs or wait_ms <= 0:
        return queue, jobs
    deadline = time.monotonic() + wait_ms / 1000
    # SQLite has no LISTEN. A caller that holds a transaction (only tests do) would not see other
    # transactions' jobs through a notification anyway, so both re-try the claim on a short timer.
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        while not jobs and time.monotonic() < deadline:
            time.sleep(min(SQLITE_POLL_S, max(0.0, deadline - time.monotonic())))
            jobs = claim()
        return queue, jobs

    listener = _listener()
    wakeup = listener.subscribe(queue.id)
    try:
        while True:
            # Subscribed before this claim: a NOTIFY committed after it sets `wakeup`, so none is missed.
            wakeup.clear()
            jobs = claim()
            remaining = deadline - time.monotonic()
            if jobs or remaining <= 0:
                return queue, jobs
            wakeup.wait(remaining)
    finally:
        listener.unsubscribe(queue.id, wakeup)


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
    outcome = Outcome(
        job_id=job_id,
        lease_token=lease_token,
        kind="success" if success else "failure",
        result=result if success else None,
        error=None if success else error,
        retry=retry,
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
    known = set(Job.objects.filter(workspace=workspace, queue=queue, id__in=ids).values_list("id", flat=True))
    outcomes = [
        Outcome(
            job_id=item.id,
            lease_token=item.lease_token,
            kind="success" if item.success else "failure",
            result=item.result if item.success else None,
            error=None if item.success else item.error,
            retry=item.retry,
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

    def subscribe(self, queue_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(queue_id, set()).add(event)
        # Until LISTEN is in place a NOTIFY could be missed; the caller claims again after this returns.
        self._listening.wait(timeout=2.0)
        return event

    def unsubscribe(self, queue_id: str, event: threading.Event) -> None:
        with self._lock:
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
            settings = connection.settings_dict
            conninfo = {
                "dbname": settings["NAME"],
                "user": settings.get("USER") or None,
                "password": settings.get("PASSWORD") or None,
                "host": settings.get("HOST") or None,
                "port": settings.get("PORT") or None,
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
