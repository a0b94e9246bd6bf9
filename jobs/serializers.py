"""Output rendering for jobs and executions.

Plain functions, not DRF serializers: a batch of 1,000 jobs renders in about a millisecond this way (PERF.md asks
for microseconds per item on hot paths). The OpenAPI shapes are declared by the `*Schema` serializers below,
which exist for documentation only.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from rest_framework import serializers

from jobs.models import Execution, Job
from jobs.specs import RESPONSE_FIELDS
from queues.events import iso
from queues.masking import target_masked

# job_to_dict reads every response field with one attrgetter (a literal dict per field was no faster). The queue
# and schedule slots read `id` as a placeholder: both are replaced below, and neither may cost a query.
_NAMES = tuple(f.name for f in RESPONSE_FIELDS)
_read = attrgetter(
    *("id" if f.name in ("queue", "schedule") else f.column or f.name for f in RESPONSE_FIELDS)
)
_TIMESTAMPS = tuple(f.name for f in RESPONSE_FIELDS if f.timestamp)


def job_to_dict(job: Job, *, queue_name: str | None = None) -> dict[str, Any]:
    out = dict(zip(_NAMES, _read(job), strict=True))
    for name in _TIMESTAMPS:
        out[name] = iso(out[name])
    out["queue"] = queue_name if queue_name is not None else job.queue.name
    out["schedule"] = None  # filled by callers that know the schedule name
    if out["http"]:
        out["http"] = target_masked(out["http"])  # header values are credentials: never read back whole
    return out


def execution_to_dict(
    execution: Execution, *, queue_name: str | None = None, schedule_name: str | None = None
) -> dict[str, Any]:
    return {
        "id": execution.id,
        "job_id": execution.job_id,
        "queue": queue_name if queue_name is not None else execution.queue.name,
        "schedule": schedule_name,
        "attempt": execution.attempt,
        "status": execution.status,
        "started_at": iso(execution.started_at),
        "completed_at": iso(execution.completed_at),
        "duration_ms": execution.duration_ms,
        "http_status": execution.http_status,
        "response_body": execution.response_body,
        "error": execution.error,
        "worker": execution.worker_id,
        "replay_of": execution.replay_of,
    }


class JobSchema(serializers.Serializer):
    """Documentation of the job object (see API.md, Jobs)."""


# The fields come from the one declaration of the job (jobs.specs); subclasses inherit them as declared fields.
JobSchema._declared_fields = {f.name: f.doc() for f in RESPONSE_FIELDS if f.doc is not None}


class ExecutionSchema(serializers.Serializer):
    """Documentation of the execution object (see API.md, Executions)."""

    id = serializers.CharField()
    job_id = serializers.CharField(allow_null=True)
    queue = serializers.CharField()
    schedule = serializers.CharField(allow_null=True)
    attempt = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=["running", "success", "failed", "timeout", "deferred", "dead_letter", "quota_exceeded"]
    )
    started_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    http_status = serializers.IntegerField(allow_null=True)
    response_body = serializers.CharField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    worker = serializers.CharField(allow_null=True)
    replay_of = serializers.CharField(allow_null=True)
