"""Per-job operator controls (API.md, Jobs): edit, cancel, delete, retry, promote, and replay of an execution.

Each runs in one short transaction under the job's row lock, the lock the engine writes outcomes under. The
helpers the bulk operations share (the re-run reset, events, deletion, the flow-parent release) live here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from billing.services import quota_consume
from config.exceptions import InvalidState, NotFound, PayloadTooLarge, ValidationFailed
from config.inputs import DATETIME_RANGE_MESSAGE, parse_client_datetime
from jobs.models import Execution, ExecutionStatus, Job, JobState
from jobs.services.dispatch import kick_on_commit
from jobs.services.stats import StatDelta, start_ms, stats_record
from jobs.specs import EDIT_FIELDS, EDIT_READ_ONLY_FIELDS, JobSpec
from queues.events import PendingEvent, events_emit
from queues.models import Queue

RETRYABLE_STATES = (JobState.FAILED, JobState.COMPLETED, JobState.CANCELLED)

# What a job looks like once it is sent back to run: a fresh start, nothing left of the last run.
RERUN_FIELDS: dict[str, Any] = {
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


def job_event(job_id: str, *, workspace: Workspace, queue: Queue, type: str, **data: Any) -> PendingEvent:
    return PendingEvent(workspace_id=workspace.id, type=type, queue_name=queue.name, job_id=job_id, data=data)


def _emit(job: Job, workspace: Workspace, queue: Queue, now: datetime, type: str, /, **data: Any) -> None:
    """The outbox event of one job's change, in the caller's transaction."""
    events_emit([job_event(job.id, workspace=workspace, queue=queue, type=type, **data)], now=now)


def delete_jobs(ids: list[str]) -> None:
    """Delete the jobs and what hangs on them (their executions; children keep living, unparented)."""
    # Through the ORM collector so every relation to Job (now or added later) is honoured; only the id is loaded.
    Job.objects.filter(id__in=ids).only("id").delete()


def release_parents_of(parent_ids: Iterable[str], *, now: datetime) -> None:
    """A child that is cancelled or removed no longer holds its flow parent back (engine's release rule)."""
    from jobs.services.engine import jobs_release_parents as _release_parents

    _release_parents(now=now, children=[Job(parent_id=p) for p in set(parent_ids) if p])


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
        if (
            "run_at" in changes
            and job.state in (JobState.WAITING, JobState.DELAYED)
            and not job.wait_for_children
        ):
            new_state = JobState.DELAYED if job.run_at > now else JobState.WAITING
        state_changed = new_state != job.state
        job.state = new_state
        job.updated_at = now
        job.save(update_fields=[*changes, "state", "updated_at"])
        if state_changed:
            _emit(job, workspace, queue, now, f"job:{new_state}", reason="edited")
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
    delta = StatDelta(queue_id=job.queue_id, workspace_id=job.workspace_id)
    first = start_ms(job.attempts, job.deferrals, execution.started_at, job.created_at)
    delta.add_ended(error=execution.error, http_status=None, first_start_ms=first)
    stats_record(deltas=[delta], now=now)


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
    job.save(
        update_fields=[
            "state",
            "finished_at",
            "updated_at",
            "lease_token",
            "lease_expires_at",
            "cancel_requested",
            "worker_id",
        ]
    )
    if previous == JobState.ACTIVE:
        _close_running_execution(job, now=now)
    # API.md has no `job:cancelled` type; the engine records a cancelled attempt as `job:removed` too.
    _emit(job, workspace, queue, now, "job:removed", cancelled=True, prev_state=previous)
    if job.parent_id:
        # A cancelled child is terminal: its parent may now be released like after a completion.
        release_parents_of([job.parent_id], now=now)


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
        delete_jobs([job.id])
        _emit(job, workspace, queue, now, "job:removed", reason="deleted", prev_state=job.state)
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
        for key, value in {**RERUN_FIELDS, "run_at": now, "updated_at": now}.items():
            setattr(job, key, value)
        job.save(update_fields=[*RERUN_FIELDS, "run_at", "updated_at"])
        _emit(job, workspace, queue, now, "job:waiting", reason="retry")
        kick_on_commit([queue.id])
    return job


def job_promote(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    """delayed -> waiting now; otherwise (or a parent still waiting for children) 409 INVALID_STATE."""
    with transaction.atomic(durable=True):
        job = _job_locked(workspace=workspace, queue=queue, job_id=job_id)
        if job.state != JobState.DELAYED:
            raise _invalid(job, f"A {job.state} job cannot be promoted; only delayed jobs can.")
        if job.wait_for_children:
            raise InvalidState(
                "This job waits for its children; it cannot be promoted.",
                details={"state": job.state, "reason": "waiting_for_children"},
            )
        now = timezone.now()
        job.state = JobState.WAITING
        job.run_at = now
        job.updated_at = now
        job.save(update_fields=["state", "run_at", "updated_at"])
        _emit(job, workspace, queue, now, "job:waiting", reason="promoted")
        kick_on_commit([queue.id])
    return job


# --- replay ---------------------------------------------------------------------------------------


def execution_replay(*, workspace: Workspace, execution_id: str) -> Job:
    """Enqueue a new job with the original's queue, payload, name, tags and target, linked by `replay_of`."""
    # Imported here: the enqueue service imports billing and validation, which need not load for other ops.
    from jobs.services.enqueue import job_enqueue_specs

    execution = (
        Execution.objects.filter(workspace=workspace, id=execution_id).select_related("job", "queue").first()
    )
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
    if execution.status == ExecutionStatus.RUNNING:
        # Still running: a replay now would run the same work twice at once. Replay it once it has finished.
        raise InvalidState(
            "This execution is still running; replay it once it has finished.",
            details={"state": execution.status},
        )
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
