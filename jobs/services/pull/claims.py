"""Pull claims: one or several pull queues, shared fairly, with long-polling.

Claiming is the engine's `job_claim` (the same SKIP LOCKED batch claim push delivery uses), so pause,
concurrency, groups and rate limits hold for pull queues too. A long-poll waits on the database seam's shared
listener (PostgreSQL LISTEN on the channel the engine NOTIFYs at commit); without one it re-tries on a timer.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from accounts.models import Workspace
from config import db
from config.exceptions import InvalidState, NotFound, ValidationFailed
from jobs.models import Job, Worker
from jobs.services.dispatch import NOTIFY_CHANNEL
from jobs.services.engine import job_claim
from jobs.services.enqueue import queue_by_name
from jobs.services.pull.longpoll import long_poll_slot
from queues.models import Queue

# Without LISTEN (SQLite) a long-poll re-tries the claim this often while it lasts.
POLL_INTERVAL_S = 0.1
# A multi-queue claim costs one claim query per queue: bounded.
MAX_CLAIM_QUEUES = 20

_rotation = itertools.count()


@dataclass(frozen=True)
class ClaimResult:
    """What a claim leased, and whether a wanted long-poll was refused by the budget (it then returned at once)."""

    jobs: list[Job]
    queue_names: dict[str, str]  # queue id -> name, to render each job's `queue`
    long_poll_refused: bool = False


def pull_queue_get(*, workspace: Workspace, queue_name: str) -> Queue:
    """The workspace's queue by name, refusing push queues (their jobs belong to the delivery engine)."""
    return pull_queue_checked(queue_by_name(workspace_id=workspace.id, name=queue_name))


def pull_queue_checked(queue: Queue | None) -> Queue:
    """A queue already read (None: there is none) as pull_queue_get answers it: 404, or 409 for a push queue."""
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
    result = jobs_claim_pull(
        workspace=workspace,
        queues=[queue],
        limit=limit,
        lease_ms=lease_ms,
        wait_ms=wait_ms,
        worker_id=worker_id,
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
        queue_names = _registered_queues(workspace=workspace, worker_id=worker_id)
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


def _registered_queues(*, workspace: Workspace, worker_id: str | None) -> list[str]:
    if worker_id is None:
        raise ValidationFailed(
            details={"queues": ["Give `queues`, or a `worker_id` whose queues are claimed."]}
        )
    registered = (
        Worker.objects.filter(workspace=workspace, id=worker_id).values_list("queues", flat=True).first()
    )
    if registered is None:
        raise ValidationFailed(details={"worker_id": ["Unknown worker."]})
    return [q for q in registered or [] if isinstance(q, str)][:MAX_CLAIM_QUEUES]


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
    with long_poll_slot(workspace_id=workspace.id, wait_ms=wait_ms) as granted:
        if not granted:
            # Over budget: answer now with what is available (nothing) instead of pinning a web thread.
            return ClaimResult([], names, long_poll_refused=True)
        return ClaimResult(_wait_and_claim(claim, [q.id for q in queues], wait_ms), names)


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
    # A caller that holds a transaction (only tests do) would not see other transactions' jobs through a
    # notification anyway, so it re-tries the claim on a short timer, as a database without LISTEN does.
    listener = None if connection.in_atomic_block else db.backend().listener(NOTIFY_CHANNEL)
    if listener is None:
        while not jobs and time.monotonic() < deadline:
            time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
            jobs = claim()
        return jobs
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
