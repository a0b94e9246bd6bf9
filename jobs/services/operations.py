"""The operator's controls: bulk queue operations, the dead-letter queue and search (API.md, Queues
"Operations"); the per-job edits, state changes and replay live in jobs.services.job_controls.

Every bulk operation works in bounded batches: each batch locks at most `BATCH_SIZE` rows with
`FOR UPDATE SKIP LOCKED` (in id order, so two operators never deadlock), changes them and writes their events
in one short transaction, then loops. A million-job drain is two hundred small transactions, never one that
stalls every claimer (DESIGN.md, "keep transactions short").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import BooleanField, Count, Func, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Workspace
from billing.services import quota_consume, quota_release
from config.exceptions import BadRequest, NotFound, ValidationFailed
from jobs.models import TERMINAL_STATES, Job, JobState
from jobs.services.dispatch import kick_on_commit
from jobs.services.job_controls import (  # the per-job controls: callers reach them as operations.*
    RERUN_FIELDS,
    RETRYABLE_STATES,
    delete_jobs,
    execution_replay,
    job_cancel,
    job_delete,
    job_event,
    job_promote,
    job_retry,
    job_update,
    release_parents_of,
)
from queues.events import PendingEvent, events_emit
from queues.models import Queue
from queues.selectors import queue_get

# Rows per transaction for bulk operations; small enough that a batch commits in tens of milliseconds.
BATCH_SIZE = 5000
DLQ_RETRY_MAX_IDS = 1000
CLEAN_MAX_LIMIT = 100_000
ACTIVE_STATES = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
CLEANABLE_STATES = (JobState.WAITING, JobState.DELAYED, *TERMINAL_STATES)


# --- bounded batches ------------------------------------------------------------------------------


def _lock_batch(queryset: QuerySet, size: int) -> list[str]:
    """Up to `size` ids of `queryset`, locked in id order, skipping rows another transaction holds."""
    ids = queryset.order_by("id").select_for_update(skip_locked=True).values_list("id", flat=True)[:size]
    return list(ids)


def _in_batches(
    queryset: QuerySet,
    apply: Callable[[list[str], datetime], int],
    *,
    batch_size: int | None = None,
    limit: int | None = None,
) -> int:
    """Run `apply(ids, now)` on successive locked batches of `queryset`, one transaction each; total affected.

    `apply` must move the rows out of `queryset` (delete them or change their state), so the loop ends.
    """
    size = batch_size or BATCH_SIZE
    total = 0
    while limit is None or total < limit:
        want = size if limit is None else min(size, limit - total)
        with transaction.atomic(durable=True):
            ids = _lock_batch(queryset, want)
            if not ids:
                break
            total += apply(ids, timezone.now())
        if len(ids) < want:
            break
    return total


def _remove_batch(*, workspace: Workspace, queue: Queue, reason: str) -> Callable[[list[str], datetime], int]:
    def apply(ids: list[str], now: datetime) -> int:
        parent_ids = list(
            Job.objects.filter(id__in=ids, parent__isnull=False).values_list("parent_id", flat=True)
        )
        delete_jobs(ids)
        events_emit(
            [job_event(i, workspace=workspace, queue=queue, type="job:removed", reason=reason) for i in ids],
            now=now,
        )
        release_parents_of(parent_ids, now=now)
        return len(ids)

    return apply


def _rerun_batch(*, workspace: Workspace, queue: Queue) -> Callable[[list[str], datetime], int]:
    def apply(ids: list[str], now: datetime) -> int:
        count = Job.objects.filter(id__in=ids).update(**RERUN_FIELDS, run_at=now, updated_at=now)
        events_emit(
            [job_event(i, workspace=workspace, queue=queue, type="job:waiting", reason="retry") for i in ids],
            now=now,
        )
        kick_on_commit([queue.id])
        return count

    return apply


def _rerun_with_quota(
    *, workspace: Workspace, queue: Queue, queryset: QuerySet, batch_size: int | None = None
) -> int:
    """Re-run every job of `queryset`; each re-run is one unit of the monthly job quota (issue 9).

    All or nothing: the quota for every matching job is consumed up front (race-free, billing.quota_consume),
    so a retry the quota cannot cover is 402 QUOTA_EXCEEDED with no job changed. The batches then re-run at
    most that many jobs, and what they did not reach (rows that changed state meanwhile) is given back.
    """
    count = queryset.count()
    if not count:
        return 0
    with transaction.atomic(durable=True):
        quota_consume(workspace=workspace, count=count)
    done = _in_batches(
        queryset, _rerun_batch(workspace=workspace, queue=queue), batch_size=batch_size, limit=count
    )
    if done < count:
        quota_release(workspace=workspace, count=count - done)
    return done


def _jobs_of(workspace: Workspace, queue: Queue) -> QuerySet:
    # Index jobs_job_ws_queue_state (workspace, queue, state, -id) serves every bulk selection below.
    return Job.objects.filter(workspace=workspace, queue=queue)


# --- queue bulk operations ------------------------------------------------------------------------


def queue_drain(*, workspace: Workspace, queue: Queue, batch_size: int | None = None) -> int:
    """Remove every waiting and delayed job of the queue; active jobs finish. Returns how many were removed."""
    removed = _in_batches(
        _jobs_of(workspace, queue).filter(state__in=[JobState.WAITING, JobState.DELAYED]),
        _remove_batch(workspace=workspace, queue=queue, reason="drained"),
        batch_size=batch_size,
    )
    with transaction.atomic(durable=True):
        events_emit(
            [
                PendingEvent(
                    workspace_id=workspace.id,
                    type="queue:drained",
                    queue_name=queue.name,
                    data={"affected": removed},
                )
            ]
        )
    return removed


def queue_clean(
    *,
    workspace: Workspace,
    queue: Queue,
    state: str,
    grace_ms: int = 0,
    limit: int = 1000,
    batch_size: int | None = None,
) -> int:
    """Remove up to `limit` jobs in `state` older than `grace_ms`: terminal jobs by `finished_at`, waiting and
    delayed jobs (BullMQ's `wait`/`delayed` clean) by `created_at`. Active jobs hold a lease: not cleanable."""
    if state not in CLEANABLE_STATES:
        raise ValidationFailed(
            details={"state": ["Must be one of waiting, delayed, completed, failed, cancelled."]}
        )
    cutoff = timezone.now() - timedelta(milliseconds=grace_ms)
    age = {"finished_at__lt": cutoff} if state in TERMINAL_STATES else {"created_at__lt": cutoff}
    return _in_batches(
        _jobs_of(workspace, queue).filter(state=state, **age),
        _remove_batch(workspace=workspace, queue=queue, reason="cleaned"),
        batch_size=batch_size,
        limit=limit,
    )


def queue_retry_jobs(*, workspace: Workspace, queue: Queue, state: str, batch_size: int | None = None) -> int:
    """Send every failed (or completed) job of the queue back to waiting with its attempts reset."""
    if state not in (JobState.FAILED, JobState.COMPLETED):
        raise ValidationFailed(details={"state": ["Must be failed or completed."]})
    return _rerun_with_quota(
        workspace=workspace,
        queue=queue,
        queryset=_jobs_of(workspace, queue).filter(state=state),
        batch_size=batch_size,
    )


def queue_promote_jobs(*, workspace: Workspace, queue: Queue, batch_size: int | None = None) -> int:
    """Make every delayed job ready now, except flow parents still waiting for their children."""

    def apply(ids: list[str], now: datetime) -> int:
        count = Job.objects.filter(id__in=ids).update(state=JobState.WAITING, run_at=now, updated_at=now)
        events_emit(
            [
                job_event(i, workspace=workspace, queue=queue, type="job:waiting", reason="promoted")
                for i in ids
            ],
            now=now,
        )
        kick_on_commit([queue.id])
        return count

    return _in_batches(
        _jobs_of(workspace, queue).filter(state=JobState.DELAYED, wait_for_children=False),
        apply,
        batch_size=batch_size,
    )


# --- the dead-letter queue ------------------------------------------------------------------------


def dlq_retry(
    *, workspace: Workspace, queue: Queue, ids: Iterable[str] | None = None, batch_size: int | None = None
) -> int:
    """Send failed jobs (the given ids, or all of them) back to waiting; ids that are not failed are skipped."""
    failed = _jobs_of(workspace, queue).filter(state=JobState.FAILED)
    if ids:
        failed = failed.filter(id__in=list(ids))
    return _rerun_with_quota(workspace=workspace, queue=queue, queryset=failed, batch_size=batch_size)


def dlq_purge(*, workspace: Workspace, queue: Queue, batch_size: int | None = None) -> int:
    """Delete every failed job of the queue."""
    return _in_batches(
        _jobs_of(workspace, queue).filter(state=JobState.FAILED),
        _remove_batch(workspace=workspace, queue=queue, reason="purged"),
        batch_size=batch_size,
    )


# --- reads (operator views) -----------------------------------------------------------------------


def queue_groups(
    *, workspace: Workspace, queue: Queue, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Distinct `group` keys with active and waiting counts, by group name (keyset on the name)."""
    rows = (
        _jobs_of(workspace, queue)
        .filter(state__in=[JobState.ACTIVE, JobState.WAITING], group__isnull=False)
        .values("group")
        .annotate(
            active=Count("id", filter=Q(state=JobState.ACTIVE)),
            waiting=Count("id", filter=Q(state=JobState.WAITING)),
        )
        .order_by("group")
    )
    if after is not None:
        rows = rows.filter(group__gt=after)
    return [{"group": r["group"], "active": r["active"], "waiting": r["waiting"]} for r in rows[:limit]]


def job_children(*, workspace: Workspace, queue: Queue, job_id: str) -> QuerySet:
    """The flow children of a job of this queue (they may live in other queues of the workspace)."""
    if not _jobs_of(workspace, queue).filter(id=job_id).exists():
        raise NotFound(f"Job {job_id!r} not found.")
    # Index jobs_job_parent.
    return Job.objects.filter(workspace=workspace, parent_id=job_id).select_related("queue")


def dlq_jobs(*, workspace: Workspace, queue: Queue) -> QuerySet:
    """The dead-letter queue: the queue's failed jobs (paginated newest first by the caller)."""
    return _jobs_of(workspace, queue).filter(state=JobState.FAILED)


class _ILike(Func):
    """`text ILIKE pattern` (backslash escapes), usable directly in `.filter()`; SQLite's LIKE is already
    case-insensitive for ASCII. A plain ILIKE, not Django's `UPPER(...) LIKE UPPER(...)`, so that a pg_trgm
    GIN index on `(payload::text)` can serve it."""

    output_field = BooleanField()
    arg_joiner = " ILIKE "
    template = "(%(expressions)s)"

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, arg_joiner=" LIKE ", template="(%(expressions)s ESCAPE '\\')", **extra
        )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_jobs(*, workspace: Workspace, kind: str, q: str, queue_name: str | None) -> QuerySet:
    """Jobs for `GET /v1/search`: `job` = exact id, `payload` = text within one queue's payloads."""
    jobs = Job.objects.filter(workspace=workspace).select_related("queue")
    if queue_name:
        jobs = jobs.filter(queue__name=queue_name)
    if kind == "job":
        return jobs.filter(id=q)
    if not queue_name:
        raise BadRequest(
            "`queue` is required for a payload search.", details={"queue": ["Required for type=payload."]}
        )
    queue = queue_get(workspace=workspace, name=queue_name)
    # Narrowed to one queue by jobs_job_queue_newest (queue, -id); newest-first with LIMIT walks that
    # index and stops at a page of matches. A pg_trgm GIN index on (payload::text) makes it scale further.
    return (
        Job.objects.filter(workspace=workspace, queue=queue)
        .filter(_ILike(Cast("payload", TextField()), Value(_like_pattern(q))))
        .select_related("queue")
    )


def search_queues(*, workspace: Workspace, q: str) -> QuerySet:
    """Queues whose name contains `q` (case-insensitive)."""
    return Queue.objects.filter(workspace=workspace, name__icontains=q)


__all__ = [
    "ACTIVE_STATES",
    "BATCH_SIZE",
    "CLEANABLE_STATES",
    "CLEAN_MAX_LIMIT",
    "DLQ_RETRY_MAX_IDS",
    "RETRYABLE_STATES",
    "dlq_jobs",
    "dlq_purge",
    "dlq_retry",
    "execution_replay",
    "job_cancel",
    "job_children",
    "job_delete",
    "job_promote",
    "job_retry",
    "job_update",
    "queue_clean",
    "queue_drain",
    "queue_groups",
    "queue_promote_jobs",
    "queue_retry_jobs",
    "search_jobs",
    "search_queues",
]
