"""Flows: a parent waiting for its children is released (or failed) once all its children are terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from config import db
from jobs.models import Job, JobState
from jobs.services.dispatch import kick_on_commit
from jobs.services.engine.common import TERMINAL
from queues.events import PendingEvent, events_emit

_CHILD_FAILED = {"message": "A child job failed.", "type": "child_failed"}


def jobs_release_parents(*, now: datetime, children: list[Any]) -> None:
    """Flows: a parent waiting for children is released (or failed) once all its children are terminal.

    `children` are the jobs (or rows with `parent_id`) that just finished; only their parent ids are read.
    A failed parent may itself be a child further up: walked level by level in a loop, never by recursion, so a
    flow thousands deep cannot hit RecursionError (issue 9).
    """
    level = children
    while level:
        level = _release_level(now=now, children=level)


def _release_level(*, now: datetime, children: list[Any]) -> list[Job]:
    """One level of jobs_release_parents; returns the parents it failed that have a parent of their own."""
    parent_ids = sorted({c.parent_id for c in children})
    if not parent_ids:
        return []
    # Locking the parents serialises the children's transactions: the last one to finish sees every sibling
    # terminal (READ COMMITTED re-reads after the lock wait), so a parent is never left behind.
    parents = list(
        Job.objects.filter(id__in=parent_ids, wait_for_children=True, state=JobState.DELAYED)
        .select_related("queue")
        .order_by("id")
        .select_for_update(of=("self",))
    )
    if not parents:
        return []
    ids = [p.id for p in parents]
    pending = _parents_with(Job.objects.filter(parent_id__in=ids).exclude(state__in=TERMINAL))
    failed = _parents_with(Job.objects.filter(parent_id__in=ids, state=JobState.FAILED))
    released, dead, events = [], [], []
    for parent in parents:
        if parent.id in pending:
            continue
        parent.updated_at = now
        if parent.id in failed and not parent.ignore_child_failures:
            dead.append(parent)
            events += _fail(parent, now)
        else:
            released.append(parent)
            events += _release(parent, now)
    if released or dead:
        db.backend().bulk_set(
            Job, released + dead, ["state", "run_at", "finished_at", "last_error", "updated_at"]
        )
        events_emit(events, now=now)
    if released:
        kick_on_commit({p.queue_id for p in released})
    return [p for p in dead if p.parent_id]


def _parents_with(children: Any) -> set[str]:
    return set(children.values_list("parent_id", flat=True).distinct())


def _fail(parent: Job, now: datetime) -> list[PendingEvent]:
    parent.state = JobState.FAILED
    parent.finished_at = now
    parent.last_error = dict(_CHILD_FAILED)
    return [
        PendingEvent(parent.workspace_id, t, parent.queue.name, parent.id, {"reason": "child_failed"})
        for t in ("job:failed", "job:dead")
    ]


def _release(parent: Job, now: datetime) -> list[PendingEvent]:
    parent.state = JobState.WAITING
    parent.run_at = now
    return [
        PendingEvent(
            parent.workspace_id, "job:waiting", parent.queue.name, parent.id, {"reason": "children_done"}
        )
    ]
