"""The operator's controls: bulk queue operations, per-job edits and state changes, the dead-letter queue,
search and replay (API.md, Queues "Operations" and Jobs).

Every bulk operation works in bounded batches: each batch locks at most `BATCH_SIZE` rows with
`FOR UPDATE SKIP LOCKED` (in id order, so two operators never deadlock), changes them and writes their events
in one short transaction, then loops. A million-job drain is two hundred small transactions, never one that
stalls every claimer (DESIGN.md, "keep transactions short").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Count, Func, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Workspace
from billing.services import quota_consume, quota_release
from config.exceptions import BadRequest, InvalidState, NotFound, PayloadTooLarge, ValidationFailed
from config.inputs import DATETIME_RANGE_MESSAGE, parse_client_datetime
from jobs.models import TERMINAL_STATES, Execution, ExecutionStatus, Job, JobState
from jobs.services.dispatch import kick_on_commit
from jobs.services.events import PendingEvent, events_emit
from jobs.specs import EDIT_FIELDS, EDIT_READ_ONLY_FIELDS, JobSpec
from queues.models import Queue
from queues.selectors import queue_get

# Rows per transaction for bulk operations; small enough that a batch commits in tens of milliseconds.
BATCH_SIZE = 5000
DLQ_RETRY_MAX_IDS = 1000
CLEAN_MAX_LIMIT = 100_000
ACTIVE_STATES = (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
RETRYABLE_STATES = (JobState.FAILED, JobState.COMPLETED, JobState.CANCELLED)
CLEANABLE_STATES = (JobState.WAITING, JobState.DELAYED, *TERMINAL_STATES)

# What a job looks like once it is sent back to run: a fresh start, nothing left of the last run.
_RERUN_FIELDS: dict[str, Any] = {
    "state": JobState.WAITING,
    "attempts": 0,
    "deferrals": 0,
    "result": None,
    "last_error": None,
    "progress": None,
    "started_at": None,
    "finished_at": None,
    "lease_token": None,
    "lease_expires_at": None,
    "worker_id": None,
    "cancel_requested": False,
}


# --- lookups --------------------------------------------------------------------------------------


def _job_locked(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    """The job row, locked until the caller's transaction ends (the engine writes outcomes under the same lock)."""
    job = Job.objects.select_for_update().filter(workspace=workspace, queue=queue, id=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id!r} not found.")
    return job


def _invalid(job: Job, message: str) -> InvalidState:
    return InvalidState(message, details={"state": job.state})


def _event(job_id: str, *, workspace: Workspace, queue: Queue, type: str, **data: Any) -> PendingEvent:
    return PendingEvent(workspace_id=workspace.id, type=type, queue_name=queue.name, job_id=job_id, data=data)


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


def _delete_jobs(ids: list[str]) -> None:
    """Delete the jobs and what hangs on them (their executions; children keep living, unparented)."""
    # Through the ORM collector so every relation to Job (now or added later) is honoured; only the id is loaded.
    Job.objects.filter(id__in=ids).only("id").delete()


def _release_parents_of(parent_ids: Iterable[str], *, now: datetime) -> None:
    """A child that is cancelled or removed no longer holds its flow parent back (engine's release rule)."""
    from jobs.services.engine import jobs_release_parents as _release_parents

    _release_parents(now=now, children=[Job(parent_id=p) for p in set(parent_ids) if p])


def _remove_batch(*, workspace: Workspace, queue: Queue, reason: str) -> Callable[[list[str], datetime], int]:
    def apply(ids: list[str], now: datetime) -> int:
        parent_ids = list(Job.objects.filter(id__in=ids, parent__isnull=False).values_list("parent_id", flat=True))
        _delete_jobs(ids)
        events_emit([_event(i, workspace=workspace, queue=queue, type="job:removed", reason=reason) for i in ids], now=now)
        _release_parents_of(parent_ids, now=now)
        return len(ids)

    return apply


def _rerun_batch(*, workspace: Workspace, queue: Queue) -> Callable[[list[str], datetime], int]:
    def apply(ids: list[str], now: datetime) -> int:
        count = Job.objects.filter(id__in=ids).update(**_RERUN_FIELDS, run_at=now, updated_at=now)
        events_emit([_event(i, workspace=workspace, queue=queue, type="job:waiting", reason="retry") for i in ids], now=now)
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
    done = _in_batches(queryset, _rerun_batch(workspace=workspace, queue=queue), batch_size=batch_size, limit=count)
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
        events_emit([PendingEvent(workspace_id=workspace.id, type="queue:drained", queue_name=queue.name,
                                  data={"affected": removed})])
    return removed


def queue_clean(
    *, workspace: Workspace, queue: Queue, state: str, grace_ms: int = 0, limit: int = 1000, batch_size: int | None = None
) -> int:
    """Remove up to `limit` jobs in `state` older than `grace_ms`: terminal jobs by `finished_at`, waiting and
    delayed jobs (BullMQ's `wait`/`delayed` clean) by `created_at`. Active jobs hold a lease: not cleanable."""
    if state not in CLEANABLE_STATES:
        raise ValidationFailed(details={"state": ["Must be one of waiting, delayed, completed, failed, cancelled."]})
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
        workspace=workspace, queue=queue, queryset=_jobs_of(workspace, queue).filter(state=state), batch_size=batch_size
    )


def queue_promote_jobs(*, workspace: Workspace, queue: Queue, batch_size: int | None = None) -> int:
    """Make every delayed job ready now, except flow parents still waiting for their children."""

    def apply(ids: list[str], now: datetime) -> int:
        count = Job.objects.filter(id__in=ids).update(state=JobState.WAITING, run_at=now, updated_at=now)
        events_emit([_event(i, workspace=workspace, queue=queue, type="job:waiting", reason="promoted") for i in ids], now=now)
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


# --- single-job operations ------------------------------------------------------------------------


def _validate_changes(data: dict[str, Any]) -> dict[str, Any]:
    """Check a PATCH body with enqueue's bounds; returns the model changes."""
    errors: dict[str, list[str]] = {}
    for key in sorted(set(data) - EDIT_FIELDS):
        errors[key] = ["This field is read-only."] if key in EDIT_READ_ONLY_FIELDS else ["Unknown field."]
    changes: dict[str, Any] = {}
    if "payload" in data:
        size = len(json.dumps(data["payload"], separators=(",", ":"), ensure_ascii=False).encode())
        if size > settings.SPINDLE_MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(
                f"The payload is {size} bytes; the limit is {settings.SPINDLE_MAX_PAYLOAD_BYTES}.",
                details={"payload": [f"At most {settings.SPINDLE_MAX_PAYLOAD_BYTES} bytes."]},
            )
        changes["payload"] = data["payload"]
    if "priority" in data:
        value = data["priority"]
        if not isinstance(value, int) or isinstance(value, bool) or not -100 <= value <= 100:
            errors["priority"] = ["Must be an integer from -100 to 100."]
        else:
            changes["priority"] = value
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) and 1 <= len(t) <= 64 for t in tags):
            errors["tags"] = ["Must be a list of strings of 1 to 64 characters."]
        elif len(tags) > 10:
            errors["tags"] = ["At most 10 tags."]
        else:
            changes["tags"] = tags
    if "run_at" in data:
        raw = data["run_at"]
        parsed = parse_client_datetime(raw)  # None for 2026-02-30 and for dates outside 1970..9999 (in UTC)
        if parsed is None:
            errors["run_at"] = ["Must be an ISO 8601 datetime with a timezone. " + DATETIME_RANGE_MESSAGE]
        else:
            changes["run_at"] = parsed
    if errors:
        raise ValidationFailed(details=errors)
    return changes


def job_update(*, workspace: Workspace, queue: Queue, job_id: str, data: dict[str, Any]) -> Job:
    """Edit payload, priority, tags or run_at of a job that is not active; a run_at change moves waiting<->delayed."""
    changes = _validate_changes(data)
    with transaction.atomic(durable=True):
        job = _job_locked(workspace=workspace, queue=queue, job_id=job_id)
        if job.state == JobState.ACTIVE:
            raise _invalid(job, "An active job cannot be edited.")
        now = timezone.now()
        for key, value in changes.items():
            setattr(job, key, value)
        new_state = job.state
        # A flow parent still waiting for its children stays delayed whatever its run_at says.
        if "run_at" in changes and job.state in (JobState.WAITING, JobState.DELAYED) and not job.wait_for_children:
            new_state = JobState.DELAYED if job.run_at > now else JobState.WAITING
        state_changed = new_state != job.state
        job.state = new_state
        job.updated_at = now
        job.save(update_fields=[*changes, "state", "updated_at"])
        if state_changed:
            events_emit([_event(job.id, workspace=workspace, queue=queue, type=f"job:{new_state}", reason="edited")], now=now)
        if job.state == JobState.WAITING:
            kick_on_commit([queue.id])
    return job


def _close_running_execution(job: Job, *, now: datetime) -> None:
    # The in-flight attempt will be refused as lease-lost, so nobody else closes its execution row.
    if not job.execution_id:
        return
    execution = Execution.objects.filter(id=job.execution_id, status=ExecutionStatus.RUNNING).first()
    if execution is None:
        return
    execution.status = ExecutionStatus.FAILED
    execution.completed_at = now
    execution.duration_ms = max(0, int((now - execution.started_at).total_seconds() * 1000))
    execution.error = {"message": "Cancelled by the operator.", "type": "cancelled", "http_status": None}
    execution.save(update_fields=["status", "completed_at", "duration_ms", "error"])


def _cancel_locked(job: Job, *, workspace: Workspace, queue: Queue, now: datetime) -> None:
    """Cancel a non-terminal job under its row lock. An active one loses its lease: the delivery's or worker's
    outcome then no longer matches `lease_token` and is refused as lease-lost, so it is neither completed nor
    retried."""
    previous = job.state
    job.state = JobState.CANCELLED
    job.finished_at = now
    job.updated_at = now
    job.lease_token = None
    job.lease_expires_at = None
    job.cancel_requested = previous == JobState.ACTIVE
    job.worker_id = None
    job.save(update_fields=["state", "finished_at", "updated_at", "lease_token", "lease_expires_at",
                            "cancel_requested", "worker_id"])
    if previous == JobState.ACTIVE:
        _close_running_execution(job, now=now)
    # API.md has no `job:cancelled` type; the engine records a cancelled attempt as `job:removed` too.
    events_emit([_event(job.id, workspace=workspace, queue=queue, type="job:removed", cancelled=True,
                        prev_state=previous)], now=now)
    if job.parent_id:
        # A cancelled child is terminal: its parent may now be released like after a completion.
        _release_parents_of([job.parent_id], now=now)


def job_cancel(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    """waiting/delayed/active -> cancelled; a terminal job is 409 INVALID_STATE."""
    with transaction.atomic(durable=True):
        job = _job_locked(workspace=workspace, queue=queue, job_id=job_id)
        if job.is_terminal:
            raise _invalid(job, f"A {job.state} job cannot be cancelled.")
        _cancel_locked(job, workspace=workspace, queue=queue, now=timezone.now())
    return job


def job_delete(*, workspace: Workspace, queue: Queue, job_id: str) -> bool:
    """Cancel a job that has not finished, or remove a terminal one (row deleted). True when removed."""
    with transaction.atomic(durable=True):
        job = _job_locked(workspace=workspace, queue=queue, job_id=job_id)
        now = timezone.now()
        if not job.is_terminal:
            _cancel_locked(job, workspace=workspace, queue=queue, now=now)
            return False
        _delete_jobs([job.id])
        events_emit([_event(job.id, workspace=workspace, queue=queue, type="job:removed", reason="deleted",
                            prev_state=job.state)], now=now)
    return True


def job_retry(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    """failed/completed/cancelled -> waiting with attempts reset; otherwise 409 INVALID_STATE."""
    with transaction.atomic(durable=True):
        job = _job_locked(workspace=workspace, queue=queue, job_id=job_id)
        if job.state not in RETRYABLE_STATES:
            raise _invalid(job, f"A {job.state} job cannot be retried.")
        # A re-run is a job run: one unit of quota, given back by the rollback if anything below fails.
        quota_consume(workspace=workspace, count=1)
        now = timezone.now()
        for key, value in {**_RERUN_FIELDS, "run_at": now, "updated_at": now}.items():
            setattr(job, key, value)
        job.save(update_fields=[*_RERUN_FIELDS, "run_at", "updated_at"])
        events_emit([_event(job.id, workspace=workspace, queue=queue, type="job:waiting", reason="retry")], now=now)
        kick_on_commit([queue.id])
    return job


def job_promote(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    """delayed -> waiting now; otherwise (or a parent still waiting for children) 409 INVALID_STATE."""
    with transaction.atomic(durable=True):
        job = _job_locked(workspace=workspace, queue=queue, job_id=job_id)
        if job.state != JobState.DELAYED:
            raise _invalid(job, f"A {job.state} job cannot be promoted; only delayed jobs can.")
        if job.wait_for_children:
            raise InvalidState("This job waits for its children; it cannot be promoted.",
                               details={"state": job.state, "reason": "waiting_for_children"})
        now = timezone.now()
        job.state = JobState.WAITING
        job.run_at = now
        job.updated_at = now
        job.save(update_fields=["state", "run_at", "updated_at"])
        events_emit([_event(job.id, workspace=workspace, queue=queue, type="job:waiting", reason="promoted")], now=now)
        kick_on_commit([queue.id])
    return job


# --- replay ---------------------------------------------------------------------------------------


def execution_replay(*, workspace: Workspace, execution_id: str) -> Job:
    """Enqueue a new job with the original's queue, payload, name, tags and target, linked by `replay_of`."""
    # Imported here: the enqueue service imports billing and validation, which need not load for other ops.
    from jobs.services.enqueue import job_enqueue_specs

    execution = Execution.objects.filter(workspace=workspace, id=execution_id).select_related("job", "queue").first()
    if execution is None:
        raise NotFound(f"Execution {execution_id!r} not found.")
    original = execution.job
    if original is None and execution.status == ExecutionStatus.QUOTA_EXCEEDED:
        # A schedule tick the quota refused never made a job: there is nothing to copy. The schedule's own
        # trigger runs its job template now.
        raise InvalidState(
            "This execution is a schedule tick the quota refused; it never created a job. "
            "Trigger the schedule instead (POST /v1/schedules/{name}/trigger).",
            details={"state": execution.status},
        )
    if original is None:
        raise NotFound("The job of this execution no longer exists, so there is nothing to replay.")
    spec = JobSpec(
        payload=original.payload,
        name=original.name,
        tags=list(original.tags or []),
        priority=original.priority,
        retry_policy=original.retry_policy,
        timeout_ms=original.timeout_ms,
        group=original.group,
        http=original.http,
        replay_of=execution.id,
    )
    with transaction.atomic(durable=True):
        [(job, _created)] = job_enqueue_specs(workspace=workspace, queue=execution.queue, specs=[spec])
    return job


# --- reads (operator views) -----------------------------------------------------------------------


def queue_groups(*, workspace: Workspace, queue: Queue, after: str | None, limit: int) -> list[dict[str, Any]]:
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
        return self.as_sql(compiler, connection, arg_joiner=" LIKE ", template="(%(expressions)s ESCAPE '\\')", **extra)


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
        raise BadRequest("`queue` is required for a payload search.", details={"queue": ["Required for type=payload."]})
    queue = queue_get(workspace=workspace, name=queue_name)
    # Narrowed to one queue by jobs_job_ws_queue (workspace, queue, -id); newest-first with LIMIT walks that
    # index and stops at a page of matches. A pg_trgm GIN index on (payload::text) makes it scale further.
    return (
        Job.objects.filter(workspace=workspace, queue=queue)
        .filter(_ILike(Cast("payload", TextField()), Value(_like_pattern(q))))
        .select_related("queue")
    )


def search_queues(*, workspace: Workspace, q: str) -> QuerySet:
    """Queues whose name contains `q` (case-insensitive)."""
    return Queue.objects.filter(workspace=workspace, name__icontains=q)
