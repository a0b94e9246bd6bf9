"""Bulk actions on hand-picked jobs (the dashboard's checkboxes): each job through its own single-job service.

Each job is its own transaction, exactly as if its action had been asked alone, so a job that cannot take the
action (a completed job cannot be cancelled) is reported and skipped without undoing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import Workspace
from config.exceptions import ApplicationError, ValidationFailed
from jobs.models import Job
from jobs.services.job_controls import job_cancel, job_delete, job_retry

BULK_LIMIT = 200
BULK_ACTIONS = {"retry": job_retry, "cancel": job_cancel, "delete": job_delete}


@dataclass
class BulkOutcome:
    done: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # job id -> why


def jobs_bulk_action(*, workspace: Workspace, action: str, job_ids: list[str]) -> BulkOutcome:
    """Retry, cancel or delete up to BULK_LIMIT jobs of the workspace by id; unknown ids are skipped."""
    if action not in BULK_ACTIONS:
        raise ValidationFailed(details={"action": ["Must be retry, cancel or delete."]})
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        raise ValidationFailed("Select at least one job.", details={"id": ["Select at least one job."]})
    if len(ids) > BULK_LIMIT:
        raise ValidationFailed(details={"id": [f"At most {BULK_LIMIT} jobs at a time."]})
    jobs = {j.id: j for j in Job.objects.filter(workspace=workspace, id__in=ids).select_related("queue")}
    outcome = BulkOutcome()
    for job_id in ids:
        job = jobs.get(job_id)
        if job is None:
            outcome.skipped[job_id] = "not found"
            continue
        try:
            BULK_ACTIONS[action](workspace=workspace, queue=job.queue, job_id=job_id)
        except ApplicationError as exc:
            outcome.skipped[job_id] = exc.message
        else:
            outcome.done.append(job_id)
    return outcome
