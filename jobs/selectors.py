"""Reads of jobs, always scoped by workspace (another workspace's job is simply not found)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from accounts.models import Workspace
from config.exceptions import BadRequest, NotFound
from jobs.models import Job, JobState
from queues.models import Queue

_STATES = frozenset(JobState.values)


@dataclass(frozen=True)
class JobFilters:
    state: str | None = None
    tag: str | None = None
    name: str | None = None
    group: str | None = None
    queue: str | None = None


def job_filters_from_params(params: Any, *, allow_queue: bool = False) -> JobFilters:
    """Parse `?state=&tag=&name=&group=` (and `queue=` for /v1/jobs); a bad value is 400 BAD_REQUEST."""
    values: dict[str, str | None] = {}
    for key in ("state", "tag", "name", "group") + (("queue",) if allow_queue else ()):
        raw = params.get(key)
        if raw in (None, ""):
            values[key] = None
            continue
        if len(raw) > 255:
            raise BadRequest(f"`{key}` is too long.", details={key: ["At most 255 characters."]})
        values[key] = raw
    state = values["state"]
    if state is not None and state not in _STATES:
        raise BadRequest(
            "`state` is not a job state.", details={"state": [f"Expected one of {', '.join(JobState.values)}."]}
        )
    return JobFilters(**values)


def job_get(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    job = Job.objects.filter(workspace=workspace, queue=queue, id=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id!r} not found.")
    return job


def _has_tag(queryset: QuerySet[Job], tag: str) -> QuerySet[Job]:
    if connection.vendor == "postgresql":
        # `tags @> '["x"]'`: served by the GIN index jobs_job_tags_gin (jsonb_path_ops).
        return queryset.filter(tags__contains=[tag])
    # SQLite has no JSON containment operator; json_each scans the (short) tag list of each row.
    return queryset.filter(
        RawSQL(
            'EXISTS (SELECT 1 FROM json_each("jobs_job"."tags") WHERE json_each.value = %s)',
            [tag],
            output_field=BooleanField(),
        )
    )


def job_list(*, workspace: Workspace, filters: JobFilters, queue: Queue | None = None) -> QuerySet[Job]:
    """Jobs of the workspace (of one queue if given), filtered; the caller orders/paginates by id.

    Indexes: jobs_job_ws_queue(_state) for a queue, jobs_job_ws(_state) across queues, jobs_job_tags_gin for tag.
    """
    queryset = Job.objects.filter(workspace=workspace)
    if queue is not None:
        queryset = queryset.filter(queue=queue)
    else:
        queryset = queryset.select_related("queue")
        if filters.queue is not None:
            queryset = queryset.filter(queue__name=filters.queue)
    if filters.state is not None:
        queryset = queryset.filter(state=filters.state)
    if filters.name is not None:
        queryset = queryset.filter(name=filters.name)
    if filters.group is not None:
        queryset = queryset.filter(group=filters.group)
    if filters.tag is not None:
        queryset = _has_tag(queryset, filters.tag)
    return queryset
