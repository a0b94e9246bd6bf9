"""The Prometheus collector of `/metrics`: every family built from the database (and the liveness marks) on each
collect, so no process keeps metric state; `render_metrics` exposes it in the text format.

Counters built from today's rows restart at 00:00 UTC; Prometheus' rate() and increase() treat that as a reset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from config import liveness

from ..fanout import fanout_lag_seconds
from ..models import AlertNotification, WebhookDelivery
from . import reads
from .reads import DURATION_KEYS, START_KEYS, QueueRef

SINCE = "since 00:00 UTC (resets daily; use rate/increase)"
QUEUE_LABELS = ("workspace", "queue")
# (metric name part, config.liveness name marked by the task, what it is)
LIVENESS = (("sweep", "sweeper", "sweeper"), ("tick", "ticker", "schedule ticker"))
# Error types the engine and the pull API record; anything else a pull worker reports counts as "other", so a
# client cannot grow the label set.
KNOWN_ERROR_TYPES = frozenset(
    {
        "timeout",
        "connection_error",
        "target_refused",
        "delivery_error",
        "lease_expired",
        "worker_deregistered",
        "worker_reaped",
        "cancelled",
        "child_failed",
        "quota_exceeded",
        "invalid_datetime",
    }
)


def start_of_day_utc() -> datetime:
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def error_label(error_type: str | None, http_status: int | None) -> str:
    """The bounded `type` label: HTTP answers by class (http_4xx, http_5xx…), known engine types as they are."""
    if error_type == "http_error" and http_status and 100 <= http_status <= 599:
        return f"http_{http_status // 100}xx"
    return error_type if error_type in KNOWN_ERROR_TYPES else "other"


def _process_families() -> Iterator[Metric]:
    yield GaugeMetricFamily("spindle_up", "1 while this Spindle process answers.", value=1)
    info = GaugeMetricFamily("spindle_info", "Build information.", labels=["version"])
    info.add_metric([str(settings.VERSION)], 1)
    yield info


def _job_families(queues: dict[str, QueueRef]) -> Iterator[Metric]:
    live = [row for row in reads.live_jobs() if row.queue_id in queues]
    jobs = GaugeMetricFamily(
        "spindle_jobs",
        "Live jobs (waiting, delayed, active) per queue and state.",
        labels=[*QUEUE_LABELS, "state"],
    )
    for row in live:
        ref = queues[row.queue_id]
        jobs.add_metric([ref.workspace_id, ref.name, row.state], row.count)
    yield jobs

    waiting = {row.queue_id: row for row in live if row.state == "waiting"}
    dead = reads.dead_letter_counts({ref.workspace_id for ref in queues.values()})
    now = timezone.now()
    depth = GaugeMetricFamily("spindle_queue_depth", "Waiting (ready) jobs per queue.", labels=QUEUE_LABELS)
    oldest = GaugeMetricFamily(
        "spindle_queue_oldest_waiting_age_seconds",
        "How long the oldest waiting job of the queue has been due (since its run_at); 0 when none waits.",
        labels=QUEUE_LABELS,
    )
    dlq = GaugeMetricFamily(
        "spindle_dlq_jobs", "Jobs in the dead-letter queue (state failed) per queue.", labels=QUEUE_LABELS
    )
    for queue_id, ref in queues.items():
        row = waiting.get(queue_id)
        age = (now - row.earliest_run_at).total_seconds() if row and row.earliest_run_at else 0.0
        depth.add_metric([ref.workspace_id, ref.name], row.count if row else 0)
        oldest.add_metric([ref.workspace_id, ref.name], round(max(0.0, age), 3))
        dlq.add_metric([ref.workspace_id, ref.name], dead.get(queue_id, 0))
    yield from (depth, oldest, dlq)

    count = GaugeMetricFamily("spindle_queues", "Queues per workspace.", labels=["workspace"])
    for ws, n in Counter(ref.workspace_id for ref in queues.values()).items():
        count.add_metric([ws], n)
    yield count


def _rollup_families(queues: dict[str, QueueRef], today: datetime) -> Iterator[Metric]:
    """Today's per-minute rollup: enqueues, outcomes, the attempt-duration and enqueue-to-start histograms,
    and errors by type."""
    stats = [s for s in reads.minute_totals(list(queues), today) if s["queue_id"] in queues]
    enqueued = CounterMetricFamily("spindle_jobs_enqueued", f"Jobs enqueued {SINCE}.", labels=QUEUE_LABELS)
    outcomes = CounterMetricFamily(
        "spindle_executions", f"Finished attempts by outcome {SINCE}.", labels=[*QUEUE_LABELS, "outcome"]
    )
    duration = HistogramMetricFamily(
        "spindle_execution_duration_seconds",
        f"Attempt (delivery) durations in seconds {SINCE}.",
        labels=QUEUE_LABELS,
    )
    start = HistogramMetricFamily(
        "spindle_enqueue_to_start_seconds",
        f"From enqueue to the first attempt's start, in seconds (includes any requested delay), of first "
        f"attempts finished {SINCE}.",
        labels=QUEUE_LABELS,
    )
    for s in stats:
        ref = queues[s["queue_id"]]
        labels = [ref.workspace_id, ref.name]
        enqueued.add_metric(labels, int(s["enq"] or 0))
        for outcome, key in (("completed", "ok"), ("failed", "failed"), ("timeout", "timeout")):
            outcomes.add_metric([*labels, outcome], int(s[key] or 0))
        duration.add_metric(
            labels, _buckets(s, "h", DURATION_KEYS, "dcount"), sum_value=int(s["dsum"] or 0) / 1000
        )
        if s["scount"]:
            start.add_metric(labels, _buckets(s, "s", START_KEYS, "scount"), sum_value=int(s["ssum"]) / 1000)
    yield from (enqueued, outcomes, duration, start, _error_family(queues, today))


def _buckets(stat: dict, prefix: str, keys: tuple[str, ...], count: str) -> list[tuple[str, float]]:
    """Cumulative buckets (le in seconds) from one queue's summed rollup histogram (`<prefix>_<key>` sums of
    ms keys). +Inf is at least the rollup's count, so _count stays the samples even where a row lacks the
    histogram."""
    buckets, running = [], 0
    for key in keys[:-1]:
        running += int(stat[f"{prefix}_{key}"] or 0)
        buckets.append((repr(int(key) / 1000), running))
    running += int(stat[f"{prefix}_{keys[-1]}"] or 0)
    buckets.append(("+Inf", max(running, int(stat[count] or 0))))
    return buckets


def _error_family(queues: dict[str, QueueRef], today: datetime) -> Metric:
    errors: Counter[tuple[str, str, str]] = Counter()
    for queue_id, error_type, http_status, n in reads.error_counts(list(queues), today):
        if queue_id in queues:
            key = (queues[queue_id].workspace_id, queues[queue_id].name, error_label(error_type, http_status))
            errors[key] += n
    family = CounterMetricFamily(
        "spindle_delivery_errors",
        f"Attempts that ended in an error, by type (http_4xx, http_5xx, timeout, connection_error…), {SINCE}.",
        labels=[*QUEUE_LABELS, "type"],
    )
    for labels, n in sorted(errors.items()):
        family.add_metric(list(labels), n)
    return family


def _outbound_families(today: datetime) -> Iterator[Metric]:
    help_tail = "pending = waiting to be sent; success/failed = created since 00:00 UTC."
    for model, name, what in (
        (WebhookDelivery, "spindle_webhook_deliveries", "Webhook deliveries"),
        (AlertNotification, "spindle_alert_notifications", "Alert notifications"),
    ):
        counts = reads.outbound_counts(model, today)
        family = GaugeMetricFamily(name, f"{what}: {help_tail}", labels=["status"])
        for status in ("pending", "success", "failed"):
            family.add_metric([status], counts.get(status, 0))
        yield family
        if model is WebhookDelivery:
            yield CounterMetricFamily(
                "spindle_webhook_deliveries_failed",
                f"Webhook deliveries that failed after every retry, created {SINCE}.",
                value=counts.get("failed", 0),
            )


def _liveness_families() -> Iterator[Metric]:
    for name, mark, what in LIVENESS:
        yield GaugeMetricFamily(
            f"spindle_last_{name}_timestamp_seconds",
            f"Unix time the {what} last ran (0: never seen, or the cache is unreachable).",
            value=liveness.last(mark) or 0.0,
        )


class SpindleCollector(Collector):
    """Reads the database on every collect: the values live in the tables, not in this process."""

    def collect(self) -> Iterator[Metric]:
        today = start_of_day_utc()
        queues = reads.queues()
        yield from _process_families()
        yield from _job_families(queues)
        yield from _rollup_families(queues, today)
        workers = GaugeMetricFamily("spindle_workers", "Registered pull workers.", labels=["workspace"])
        for ws, n in reads.workers():
            workers.add_metric([ws], n)
        yield workers
        yield from _outbound_families(today)
        yield GaugeMetricFamily(
            "spindle_events_fanout_lag_seconds",
            "How far the event fan-out cursor trails now (includes the safety lag).",
            value=round(fanout_lag_seconds(), 3),
        )
        yield from _liveness_families()


# Its own registry: the default one would add this process's CPU and GC, which a snapshot shared by every
# process cannot stand for.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(SpindleCollector())


def render_metrics() -> str:
    """The exposition text of one collect (every query reads live or today's rows only, through an index)."""
    return generate_latest(REGISTRY).decode()
