"""Queue reads: lookups by name, the outbox's events, metrics buckets and sparklines (from the minute rollup).
Job counts per queue read the jobs table and so live above, in jobs.queue_selectors."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Workspace
from billing.services import next_period, period_start, quota_used
from config.exceptions import first_or_404

from .events import iso
from .models import Event, Queue, QueueMinuteStat

SPARKLINE_MINUTES = 60


def queue_list(*, workspace: Workspace) -> QuerySet[Queue]:
    return Queue.objects.filter(workspace=workspace)


def queue_get(*, workspace: Workspace, name: str) -> Queue:
    """The workspace's queue by name; another workspace's queue is a 404 like an unknown one."""
    return first_or_404(Queue.objects.filter(workspace=workspace, name=name), f"Queue '{name}' not found.")


def event_list(
    *, workspace: Workspace | str, queue_name: str | None = None, after: str | None = None
) -> QuerySet[Event]:
    """The workspace's (or its id's) events, or one queue's, after an event id (exclusive); unordered.
    Indexes jobs_event_ws and jobs_event_ws_queue."""
    qs = Event.objects.filter(workspace=workspace)
    if queue_name is not None:
        qs = qs.filter(queue_name=queue_name)
    if after:
        qs = qs.filter(id__gt=after)
    return qs


def _p95(hist: dict[str, int]) -> int | None:
    """The upper bound of the histogram bucket holding the 95th percentile."""
    buckets: list[tuple[float, int]] = []
    for key, count in hist.items():
        try:
            buckets.append((float(key), int(count)))
        except (TypeError, ValueError):
            continue
    total = sum(c for _, c in buckets)
    if total <= 0:
        return None
    buckets.sort()
    threshold = 0.95 * total
    running = 0
    finite = [upper for upper, _ in buckets if upper != float("inf")]
    for upper, count in buckets:
        running += count
        if running >= threshold:
            if upper == float("inf"):
                # An open-ended top bucket has no upper bound; its lower edge is the best we can say.
                return int(finite[-1]) if finite else None
            return int(upper)
    return int(finite[-1]) if finite else None


def _floor(value: datetime, granularity: str) -> datetime:
    value = value.astimezone(UTC).replace(second=0, microsecond=0)
    return value.replace(minute=0) if granularity == "hour" else value


def queue_metrics(*, queue: Queue, granularity: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Buckets from `start` to `end` (inclusive, floored to the granularity), zeros filled, oldest first."""
    step = timedelta(hours=1) if granularity == "hour" else timedelta(minutes=1)
    first, last = _floor(start, granularity), _floor(end, granularity)
    acc: dict[datetime, dict[str, Any]] = {}
    ts = first
    while ts <= last:
        acc[ts] = {"enqueued": 0, "completed": 0, "failed": 0, "sum": 0, "n": 0, "hist": defaultdict(int)}
        ts += step
    # Index jobs_stat_queue_minute_uniq (queue, minute) serves the range scan.
    rows = QueueMinuteStat.objects.filter(queue=queue, minute__gte=first, minute__lt=last + step).values_list(
        "minute", "enqueued", "completed", "failed", "duration_sum_ms", "duration_count", "duration_hist"
    )
    for minute, enqueued, completed, failed, dsum, dcount, hist in rows:
        bucket = acc.get(_floor(minute, granularity))
        if bucket is None:
            continue
        bucket["enqueued"] += enqueued
        bucket["completed"] += completed
        bucket["failed"] += failed
        bucket["sum"] += dsum
        bucket["n"] += dcount
        for key, count in (hist or {}).items():
            bucket["hist"][key] += count
    return [
        {
            "ts": iso(ts),
            "enqueued": b["enqueued"],
            "completed": b["completed"],
            "failed": b["failed"],
            "avg_duration_ms": round(b["sum"] / b["n"], 1) if b["n"] else None,
            "p95_duration_ms": _p95(b["hist"]),
        }
        for ts, b in acc.items()
    ]


def sparklines(*, workspace: Workspace, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per queue (by name), completed and failed counts of the last 60 minutes, oldest first, zeros filled."""
    now = _floor(now or timezone.now(), "minute")
    start = now - timedelta(minutes=SPARKLINE_MINUTES - 1)
    queues = list(Queue.objects.filter(workspace=workspace).order_by("name").values_list("id", "name"))
    series = {qid: ([0] * SPARKLINE_MINUTES, [0] * SPARKLINE_MINUTES) for qid, _ in queues}
    # Index jobs_stat_ws_minute (workspace, minute).
    rows = QueueMinuteStat.objects.filter(
        workspace=workspace, minute__gte=start, minute__lt=now + timedelta(minutes=1)
    ).values_list("queue_id", "minute", "completed", "failed")
    for queue_id, minute, completed, failed in rows:
        if queue_id not in series:
            continue
        index = int((_floor(minute, "minute") - start).total_seconds() // 60)
        if 0 <= index < SPARKLINE_MINUTES:
            series[queue_id][0][index] += completed
            series[queue_id][1][index] += failed
    return [{"queue": name, "completed": series[qid][0], "failed": series[qid][1]} for qid, name in queues]


def usage_report(*, workspace: Workspace, period: date, now: datetime | None = None) -> dict[str, Any]:
    """A month of usage from billing's UsageCounter and the QueueMinuteStat rollup (index jobs_stat_ws_minute).
    Here, not in billing, because billing sits below queues and cannot read the rollup."""
    now = now or timezone.now()
    start = period_start(period)
    end = period_start(next_period(period))
    stats = QueueMinuteStat.objects.filter(workspace=workspace, minute__gte=start, minute__lt=end)
    sums = {
        "enqueued": Sum("enqueued"),
        "success": Sum("completed"),
        "failed": Sum("failed"),
        "timeout": Sum("timeout"),
    }

    def _row(values: dict[str, Any]) -> dict[str, int]:
        row = {k: int(values.get(k) or 0) for k in sums}
        row["total"] = row["success"] + row["failed"] + row["timeout"]
        return row

    totals = _row(stats.aggregate(**sums))
    by_queue = [
        {"queue": r["queue__name"], **_row(r)}
        for r in stats.values("queue__name").annotate(**sums).order_by("queue__name")
    ]
    per_day = {
        r["day"]: _row(r) for r in stats.annotate(day=TruncDate("minute")).values("day").annotate(**sums)
    }
    # Every day of the month that has begun, zeros included, so charts need no gap filling.
    last_day = min(end, now + timedelta(days=1)).date()
    by_day = []
    day = start.date()
    while day < last_day:
        by_day.append({"date": day.isoformat(), **per_day.get(day, _row({}))})
        day += timedelta(days=1)
    return {
        "period": {"start": start, "end": end},
        "jobs_enqueued": quota_used(workspace=workspace, period=period),
        "executions": {k: totals[k] for k in ("total", "success", "failed", "timeout")},
        "by_queue": by_queue,
        "by_day": by_day,
    }
