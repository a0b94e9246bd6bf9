"""Reads the dashboard pages need, composed from the other apps' selectors (no query of its own where one exists)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Workspace
from billing.selectors import billing_status, quota_summary
from billing.services import current_period
from jobs.models import Execution, Job, JobState
from jobs.queue_selectors import queue_counts
from queues.models import Queue
from queues.selectors import queue_list, sparklines, usage_report
from schedules.models import Schedule
from schedules.selectors import schedule_list
from schedules.timing import upcoming

SPARK_WIDTH = 120
SPARK_HEIGHT = 24
PREVIEW_RUNS = 5
STATES = [s.value for s in JobState]


def sparkline_points(
    values: list[int], *, peak: int, width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT
) -> str:
    """SVG polyline points, oldest left; `peak` is shared by a queue's two lines so they compare."""
    if not values:
        return ""
    step = width / max(len(values) - 1, 1)
    scale = (height - 2) / peak if peak > 0 else 0
    # One pixel of margin so a flat zero line stays visible at the bottom edge.
    return " ".join(f"{i * step:.1f},{height - 1 - v * scale:.1f}" for i, v in enumerate(values))


@dataclass(frozen=True)
class QueueRow:
    queue: Queue
    counts: dict[str, int]
    completed_points: str
    failed_points: str
    completed_last_hour: int
    failed_last_hour: int


def queues_overview(*, workspace: Workspace) -> list[QueueRow]:
    """Every queue with its job counts per state and the last hour's sparklines (the /v1/metrics/sparklines data)."""
    queues = list(queue_list(workspace=workspace).order_by("name"))
    counts = queue_counts(workspace=workspace, queue_ids=[q.id for q in queues])
    lines = {s["queue"]: s for s in sparklines(workspace=workspace)}
    rows = []
    for queue in queues:
        line = lines.get(queue.name, {"completed": [], "failed": []})
        peak = max([*line["completed"], *line["failed"], 0])
        rows.append(
            QueueRow(
                queue=queue,
                counts={state: counts[queue.id].get(state, 0) for state in STATES},
                completed_points=sparkline_points(line["completed"], peak=peak),
                failed_points=sparkline_points(line["failed"], peak=peak),
                completed_last_hour=sum(line["completed"]),
                failed_last_hour=sum(line["failed"]),
            )
        )
    return rows


def job_executions(*, workspace: Workspace, job: Job) -> QuerySet[Execution]:
    """A job's attempts, newest first (index jobs_exec_job_attempt)."""
    return Execution.objects.filter(workspace=workspace, job_id=job.id).order_by("-attempt", "-started_at")


@dataclass(frozen=True)
class ScheduleRow:
    schedule: Schedule
    next_runs: list[datetime]


def schedules_preview(
    *, workspace: Workspace, now: datetime | None = None, count: int = PREVIEW_RUNS
) -> list[ScheduleRow]:
    """Schedules by name with their next `count` fire times (none while paused), by schedules.timing."""
    now = now or timezone.now()
    rows = []
    for schedule in schedule_list(workspace=workspace).select_related("queue").order_by("name"):
        runs: list[datetime] = []
        if not schedule.paused:
            runs = upcoming(
                cron=schedule.cron,
                interval_ms=schedule.interval_ms,
                tz_name=schedule.timezone,
                after=now,
                count=count,
                first=schedule.next_run_at,
            )
        rows.append(ScheduleRow(schedule=schedule, next_runs=runs))
    return rows


def usage_overview(*, workspace: Workspace) -> dict[str, Any]:
    """Quota used against the plan, the plan's request rate, this month's executions and billing state."""
    quota = quota_summary(workspace=workspace)
    limit = quota["limit"]
    return {
        "plan": workspace.plan,
        "quota": quota,
        "quota_percent": min(100, round(100 * quota["used"] / limit)) if limit else None,
        "requests_per_minute": workspace.plan.requests_per_minute,
        "report": usage_report(workspace=workspace, period=current_period()),
        "billing": billing_status(workspace=workspace),
    }
