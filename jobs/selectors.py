"""Reads of jobs, always scoped by workspace (another workspace's job is simply not found)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet

from accounts.models import Workspace
from config import db
from config.exceptions import BadRequest, first_or_404
from jobs.models import Job, JobState
from jobs.queue_selectors import state_counts_into
from jobs.services.engine.rows import job_cols_safe, load_job
from queues.models import Queue

_STATES = frozenset(JobState.values)


@dataclass(frozen=True)
class JobFilters:
    state: str | None = None
    tag: str | None = None
    name: str | None = None
    group: str | None = None
    queue: str | None = None
    parent: str | None = None


def job_filters_from_params(params: Any, *, allow_queue: bool = False) -> JobFilters:
    """Parse `?state=&tag=&name=&group=&parent=` (and `queue=` for /v1/jobs); a bad value is 400 BAD_REQUEST."""
    values: dict[str, str | None] = {}
    for key in ("state", "tag", "name", "group", "parent") + (("queue",) if allow_queue else ()):
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
            "`state` is not a job state.",
            details={"state": [f"Expected one of {', '.join(JobState.values)}."]},
        )
    parent = values["parent"]
    if parent is not None and (not parent.startswith("job_") or len(parent) > 40):
        raise BadRequest("`parent` is not a job id.", details={"parent": ["Expected a job id (`job_…`)."]})
    return JobFilters(**values)


def job_state_from_params(params: Any) -> str | None:
    """`?state=` alone (flows): a job state or nothing; anything else is 400 BAD_REQUEST."""
    return job_filters_from_params({"state": params.get("state")}).state


def job_get(*, workspace: Workspace, queue: Queue, job_id: str) -> Job:
    return first_or_404(
        Job.objects.filter(workspace=workspace, queue=queue, id=job_id), f"Job {job_id!r} not found."
    )


@functools.cache
def _job_in_queue_sql() -> str:
    return (
        f"SELECT {job_cols_safe()} FROM jobs_job WHERE id = %s AND workspace_id = %s"
        " AND queue_id = (SELECT id FROM queues_queue WHERE workspace_id = %s AND name = %s)"
    )


def job_in_queue(*, workspace: Workspace, queue_name: str, job_id: str) -> Job | None:
    """The workspace's job in the queue of that name (one query, its SQL built once per process), or None."""
    if not db.backend().SET_BASED:
        # SQLite hands datetimes back as text, which only the ORM converts.
        return Job.objects.filter(workspace=workspace, queue__name=queue_name, id=job_id).first()
    with connection.cursor() as cursor:
        cursor.execute(_job_in_queue_sql(), [job_id, workspace.id, workspace.id, queue_name])
        row = cursor.fetchone()
    return load_job(row) if row is not None else None


def _has_tag(queryset: QuerySet[Job], tag: str) -> QuerySet[Job]:
    # PostgreSQL: served by the GIN index jobs_job_tags_gin (jsonb_path_ops).
    return queryset.filter(db.backend().json_array_contains("tags", '"jobs_job"."tags"', tag))


def job_list(*, workspace: Workspace, filters: JobFilters, queue: Queue | None = None) -> QuerySet[Job]:
    """Jobs of the workspace (of one queue if given), filtered; the caller orders/paginates by id.

    Indexes: jobs_job_queue_newest / jobs_job_ws_queue_state for a queue, jobs_job_ws(_state) across queues, jobs_job_tags_gin for tag.
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
    if filters.parent is not None:
        # Served by the partial index jobs_job_parent; another workspace's parent simply matches nothing.
        queryset = queryset.filter(parent_id=filters.parent)
    if filters.tag is not None:
        queryset = _has_tag(queryset, filters.tag)
    return queryset


def job_get_any(*, workspace: Workspace, job_id: str) -> Job:
    """One job of the workspace whatever its queue (GET /v1/jobs/{id}); another workspace's job is a 404."""
    jobs = Job.objects.filter(workspace=workspace, id=job_id).select_related("queue")
    return first_or_404(jobs, f"Job {job_id!r} not found.")


def flow_parent_list(*, workspace: Workspace, state: str | None = None) -> QuerySet[Job]:
    """Flow parents of the workspace: jobs created with `wait_for_children`, or that any job names as its parent.

    The caller orders and paginates by id (newest first). The candidates are a UNION of two index scans, so the
    cost follows the number of flow jobs, not of all jobs (an EXISTS per row scanned every job of the workspace:
    ~0.4 s at 200k jobs): parents that wait (partial index jobs_job_ws_flow_waiting) and the parent ids that
    children name (partial index jobs_job_parent, child rows only).
    """
    waiting = Job.objects.filter(workspace=workspace, wait_for_children=True).values("id")
    named = Job.objects.filter(workspace=workspace, parent__isnull=False).values("parent_id")
    queryset = Job.objects.filter(workspace=workspace, id__in=waiting.union(named)).select_related("queue")
    if state is not None:
        queryset = queryset.filter(state=state)
    return queryset


def children_state_counts(*, workspace: Workspace, parent_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per parent, how many children are in each state: one GROUP BY over jobs_job_parent for a page of parents."""
    counts: dict[str, dict[str, int]] = {pid: dict.fromkeys(JobState.values, 0) for pid in parent_ids}
    return state_counts_into(counts, workspace=workspace, by="parent_id")


def workspace_state_counts(*, workspace: Workspace) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Jobs per state over the whole workspace and per queue (GET /v1/metrics/status): one GROUP BY served by
    jobs_job_ws_queue_state (an index-only scan), queues without jobs included with zeros."""
    totals = dict.fromkeys(JobState.values, 0)
    per_queue: dict[str, dict[str, int]] = {
        name: dict.fromkeys(JobState.values, 0)
        for name in Queue.objects.filter(workspace=workspace).order_by("name").values_list("name", flat=True)
    }
    rows = (
        Job.objects.filter(workspace=workspace)
        .values_list("queue__name", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for queue_name, state, n in rows:
        totals[state] = totals.get(state, 0) + n
        per_queue.setdefault(queue_name, dict.fromkeys(JobState.values, 0))[state] = n
    return totals, [{"queue": name, "counts": counts} for name, counts in per_queue.items()]
