"""Reads about a queue's jobs: live counts per state and "has unfinished work". They live in jobs, not queues,
because queues sits below jobs (DESIGN.md "Layers") and cannot read the Job model."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count

from accounts.models import Workspace
from queues.models import Queue

from .models import Job

UNFINISHED_STATES = ("waiting", "delayed", "active")


def queue_counts(*, workspace: Workspace, queue_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Jobs per state for each queue, in one GROUP BY (index jobs_job_ws_queue_state)."""
    ids = list(queue_ids)
    counts: dict[str, dict[str, int]] = {qid: {} for qid in ids}
    return state_counts_into(counts, workspace=workspace, by="queue_id")


def state_counts_into(
    counts: dict[str, dict[str, int]], *, workspace: Workspace, by: str
) -> dict[str, dict[str, int]]:
    """Fill `counts` (keyed by the values of the `by` column) with jobs per state, in one GROUP BY."""
    if not counts:
        return counts
    rows = (
        Job.objects.filter(workspace=workspace, **{f"{by}__in": list(counts)})
        .values_list(by, "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for key, state, n in rows:
        counts[key][state] = n
    return counts


def queue_has_unfinished_jobs(*, queue: Queue) -> bool:
    return Job.objects.filter(
        workspace_id=queue.workspace_id, queue=queue, state__in=list(UNFINISHED_STATES)
    ).exists()
