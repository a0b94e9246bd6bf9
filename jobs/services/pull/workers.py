"""The pull worker registry: register, heartbeat, online status, and deregistering (or reaping) a worker,
which releases its leases as if they had expired."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Workspace
from config.exceptions import NotFound
from jobs.models import Execution, ExecutionStatus, Job, JobState, Worker
from jobs.services.dispatch import kick_on_commit
from jobs.services.engine.outcomes import log_dead_letters  # the one dead-letter line
from jobs.services.stats import StatDelta, start_ms, stats_record
from queues.events import PendingEvent, events_emit

# Stale workers reaped per sweep; the rest wait for the next sweep (a second later).
REAP_BATCH = 100
_RELEASE_MESSAGES = {
    "worker_deregistered": "The worker deregistered; its lease was released.",
    "worker_reaped": "The worker stopped sending heartbeats; its lease was released.",
}


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
            worker_deregister(
                workspace=worker.workspace, worker_id=worker.id, reason="worker_reaped", seen_before=cutoff
            )
            reaped += 1
        except NotFound:
            pass  # deregistered, or it came back to life, since we looked
    return reaped


def worker_deregister(
    *,
    workspace: Workspace,
    worker_id: str,
    reason: str = "worker_deregistered",
    seen_before: datetime | None = None,
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
            .values_list(
                "id",
                "queue_id",
                "queue__name",
                "execution_id",
                "attempts",
                "max_attempts",
                "deferrals",
                "started_at",
                "created_at",
            )
        )
        if held:
            _release_held(workspace=workspace, worker_id=worker_id, held=held, reason=reason, now=now)
        worker.delete()
    return [row[0] for row in held]


def _release_held(
    *, workspace: Workspace, worker_id: str, held: list[tuple], reason: str, now: datetime
) -> None:
    """Release a departing worker's locked jobs: waiting again, or failed when out of attempts."""
    error = {"message": _RELEASE_MESSAGES[reason], "type": reason}
    released = [row for row in held if row[4] < row[5]]
    dead = [row for row in held if row[4] >= row[5]]
    common = {
        "lease_token": None,
        "lease_expires_at": None,
        "worker_id": None,
        "updated_at": now,
        "last_error": error,
    }
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
    events = [PendingEvent(workspace.id, "job:stalled", row[2], row[0], data) for row in held]
    for row in dead:
        events.append(PendingEvent(workspace.id, "job:failed", row[2], row[0], {**data, "error": error}))
        events.append(PendingEvent(workspace.id, "job:dead", row[2], row[0], {**data, "error": error}))
    events_emit(events, now=now)
    stats_record(deltas=_release_deltas(workspace.id, held, error), now=now)
    if dead:
        # One WARNING per dead-lettered job after commit, in the engine's form (nothing for a rolled-back reap).
        lines = [
            {
                "job_id": row[0],
                "queue": row[2],
                "queue_id": row[1],
                "workspace_id": workspace.id,
                "attempts": row[4],
                "error_type": reason,
            }
            for row in dead
        ]
        transaction.on_commit(lambda: log_dead_letters(lines))
    # The released jobs are ready again: wake long-polling claimers (one NOTIFY per queue).
    kick_on_commit(sorted({row[1] for row in released}))


def _release_deltas(workspace_id: str, held: list[tuple], error: dict) -> list[StatDelta]:
    """The rollup's share of a release: each attempt's error, and the start latency of first attempts."""
    deltas: dict[str, StatDelta] = {}
    for _id, queue_id, _name, execution_id, attempts, _max, deferrals, started_at, created_at in held:
        if not execution_id:
            continue  # no attempt row was written for it, so no attempt ended
        delta = deltas.setdefault(queue_id, StatDelta(queue_id=queue_id, workspace_id=workspace_id))
        first = start_ms(attempts, deferrals, started_at, created_at)
        delta.add_ended(error=error, http_status=None, first_start_ms=first)
    return list(deltas.values())
