"""Reads the dashboard pages need, composed from the other apps' selectors (no query of its own where one exists)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cron_descriptor import ExpressionDescriptor, Options
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Workspace
from billing.selectors import billing_status, quota_summary
from billing.services import current_period
from jobs.models import Execution, Job, JobState, Worker
from jobs.queue_selectors import queue_counts
from jobs.services.pull.workers import worker_active_counts, worker_is_online
from queues.models import Event, Queue
from queues.selectors import queue_list, queue_metrics, sparklines, usage_report
from schedules.models import Schedule
from schedules.selectors import schedule_list
from schedules.timing import upcoming

from .charts import BarChart, bar_chart

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


def events_after(*, workspace_id: str, after: str | None, limit: int) -> list[tuple[str, str, str]]:
    """(queue, job, type) of the workspace's events after `after`, oldest first (index jobs_event_ws)."""
    events = Event.objects.filter(workspace_id=workspace_id)
    if after is not None:
        events = events.filter(id__gt=after)
    rows = events.order_by("id").values_list("queue_name", "job_id", "type")[:limit]
    return [(q or "", j or "", t) for q, j, t in rows]


def job_executions(*, workspace: Workspace, job: Job) -> QuerySet[Execution]:
    """A job's attempts, newest first (index jobs_exec_job_attempt)."""
    return Execution.objects.filter(workspace=workspace, job_id=job.id).order_by("-attempt", "-started_at")


@dataclass(frozen=True)
class ScheduleRow:
    schedule: Schedule
    next_runs: list[datetime]
    described: str = ""


def schedules_preview(
    *, workspace: Workspace, now: datetime | None = None, count: int = PREVIEW_RUNS
) -> list[ScheduleRow]:
    """Schedules by name with their next `count` fire times (none while paused), by schedules.timing."""
    now = now or timezone.now()
    return [
        schedule_preview(schedule, now=now, count=count)
        for schedule in schedule_list(workspace=workspace).select_related("queue").order_by("name")
    ]


def schedule_preview(
    schedule: Schedule, *, now: datetime | None = None, count: int = PREVIEW_RUNS
) -> ScheduleRow:
    runs: list[datetime] = []
    if not schedule.paused:
        runs = upcoming(
            cron=schedule.cron,
            interval_ms=schedule.interval_ms,
            tz_name=schedule.timezone,
            after=now or timezone.now(),
            count=count,
            first=schedule.next_run_at,
        )
    return ScheduleRow(
        schedule=schedule, next_runs=runs, described=cron_in_words(schedule.cron, schedule.interval_ms)
    )


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


# --- job page ------------------------------------------------------------------------------------------------


def job_relations(*, workspace: Workspace, job: Job) -> dict[str, Any]:
    """A job's flow parent and children (index jobs_job_parent) and the pull worker holding it, if any."""
    parent = None
    if job.parent_id:
        parent = Job.objects.filter(workspace=workspace, id=job.parent_id).select_related("queue").first()
    children = list(
        Job.objects.filter(workspace=workspace, parent_id=job.id).select_related("queue").order_by("id")[:100]
    )
    worker = None
    if job.worker_id:
        worker = Worker.objects.filter(workspace=workspace, id=job.worker_id).first()
    return {"parent": parent, "children": children, "worker": worker}


# --- queue page ----------------------------------------------------------------------------------------------

CHART_RANGES = {"1h": ("minute", timedelta(hours=1)), "24h": ("hour", timedelta(hours=24))}


def queue_charts(*, queue: Queue, span: str, now: datetime | None = None) -> list[BarChart]:
    """Throughput, failures and p95 latency from the per-minute rollup (the /v1/queues/{name}/metrics data)."""
    granularity, length = CHART_RANGES.get(span, CHART_RANGES["1h"])
    now = now or timezone.now()
    buckets = queue_metrics(queue=queue, granularity=granularity, start=now - length, end=now)
    label = [b["ts"][11:16] for b in buckets]
    return [
        bar_chart("Completed", list(zip(label, [b["completed"] for b in buckets], strict=True))),
        bar_chart("Failed", list(zip(label, [b["failed"] for b in buckets], strict=True)), tone="bad"),
        bar_chart(
            "p95 duration", list(zip(label, [b["p95_duration_ms"] for b in buckets], strict=True)), unit="ms"
        ),
    ]


def queue_state_counts(*, workspace: Workspace, queue: Queue) -> dict[str, int]:
    counts = queue_counts(workspace=workspace, queue_ids=[queue.id])[queue.id]
    return {state: counts.get(state, 0) for state in STATES}


# --- schedules and workers -----------------------------------------------------------------------------------


def cron_in_words(cron: str | None, interval_ms: int | None) -> str:
    """`0 3 * * *` -> "At 03:00"; an interval schedule -> "Every 90 s"."""
    if not cron:
        seconds = (interval_ms or 0) / 1000
        return f"Every {seconds:,.0f} s" if seconds >= 1 else f"Every {interval_ms} ms"
    try:
        options = Options()
        options.use_24hour_time_format = True
        return str(ExpressionDescriptor(cron, options).get_description())
    except Exception:  # noqa: BLE001 - a cron the describer cannot read is shown as it is
        return cron


def workers_overview(*, workspace: Workspace) -> list[dict[str, Any]]:
    """Registered pull workers, last seen first, online or not, with the jobs each holds a lease on now."""
    workers = list(Worker.objects.filter(workspace=workspace).order_by("-last_seen_at")[:200])
    held = worker_active_counts(workspace=workspace, worker_ids=[w.id for w in workers])
    return [{"worker": w, "active": held.get(w.id, 0), "online": worker_is_online(w)} for w in workers]
