"""Outbox fan-out: read new jobs.Event rows once, create webhook deliveries and evaluate alerts.

Reading the outbox safely. Event ids are time-ordered but taken before their transaction commits, so an event
can become visible after events with bigger ids: a bare "id > last cursor" would skip it for good. Hence:
- the cursor (`FanoutCursor.position`) only advances to `now - SPINDLE_FANOUT_LAG_S` (default 10 s), a bound on
  how long an event transaction stays open after emitting (statement and idle timeouts keep them short);
- events above the cursor are read on every run, and the ones already handled carry a `FanoutMark`, so an event
  that commits late but inside the lag window is still seen exactly once; marks below the cursor are pruned;
- each run holds the cursor row FOR UPDATE SKIP LOCKED, so two beat processes never fan out the same batch,
  and a unique (subscription, event) constraint makes a repeated run create no second delivery.
Only workspaces with an enabled subscription or alert are read at all.

Bounded and fair (issue 9): a run reads at most `batch_size` events, taken round-robin across workspaces
(`_fair_batch`), and loads only the subscriptions of the workspaces in that batch; the cursor then stops below
the first event left behind, and the events handled above it carry marks.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.db import backend
from jobs.models import Execution, ExecutionStatus
from queues.events import event_to_dict, iso
from queues.models import Event
from schedules.models import Schedule

from .models import (
    Alert,
    AlertNotification,
    FanoutCursor,
    FanoutMark,
    NotificationKind,
    WebhookDelivery,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

CURSOR_NAME = "events"
SEND_DUE_TASK = "alerts.send_due"
BATCH = 1000
DEFAULT_LAG_S = 10.0
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

FAILED_STATUSES = (
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.DEAD_LETTER,
    ExecutionStatus.QUOTA_EXCEEDED,
)
# Deferred (429/503 with Retry-After) and running attempts are neither a failure nor a success.
OUTCOME_STATUSES = (ExecutionStatus.SUCCESS, *FAILED_STATUSES)
# How many recent executions an evaluation reads at least (the count in the message, not the decision).
STREAK_WINDOW = 50


def id_floor(prefix: str, at: datetime) -> str:
    """The smallest id (config.ids layout) a row created at `at` can have: ids below it are older."""
    millis = int(at.timestamp() * 1000)
    head = []
    for _ in range(10):
        head.append(_ALPHABET[millis & 31])
        millis >>= 5
    return f"{prefix}_{''.join(reversed(head))}" + "0" * 16


@dataclass
class FanoutResult:
    events: int = 0
    deliveries: int = 0
    notifications: int = 0
    skipped: bool = False


def _lock_cursor() -> FanoutCursor | None:
    FanoutCursor.objects.get_or_create(name=CURSOR_NAME)
    return FanoutCursor.objects.select_for_update(skip_locked=True).filter(name=CURSOR_NAME).first()


def events_fanout(*, batch_size: int = BATCH, lag_s: float | None = None) -> FanoutResult:
    """One fan-out run: the next batch of unhandled events -> deliveries, alert evaluations; advance the cursor."""
    lag = float(getattr(settings, "SPINDLE_FANOUT_LAG_S", DEFAULT_LAG_S)) if lag_s is None else lag_s
    result = FanoutResult()
    with transaction.atomic(durable=True):
        cursor = _lock_cursor()
        if cursor is None:
            result.skipped = True  # another process holds the cursor this second
            return result
        now = timezone.now()
        horizon = id_floor("evt", now - timedelta(seconds=lag))
        if backend().SET_BASED:
            events, bound = _fair_batch(position=cursor.position, batch_size=batch_size)
        else:
            events, bound = _batch_in_id_order(position=cursor.position, batch_size=batch_size)
        # Only the subscriptions of the workspaces in this batch: memory bounded by the batch, not by the tenants.
        subs = list(
            WebhookSubscription.objects.filter(
                enabled=True, workspace_id__in={e.workspace_id for e in events}
            )
        )
        result.events = len(events)
        if events:
            result.deliveries = _deliveries_create(events=events, subs=subs)
            result.notifications = _alerts_evaluate(events=events, now=now)
        # Everything visible up to `reached` is handled; past the horizon, late commits may still come.
        reached = horizon if bound is None else bound
        position = max(cursor.position, min(reached, horizon))
        marks = [FanoutMark(event_id=e.id) for e in events if e.id > position]
        if marks:
            FanoutMark.objects.bulk_create(marks, ignore_conflicts=True)
        if position != cursor.position:
            FanoutMark.objects.filter(event_id__lte=position).delete()
            FanoutCursor.objects.filter(name=CURSOR_NAME).update(position=position, updated_at=now)
    if result.deliveries or result.notifications:
        _hint_send()
    return result


def _subscribed_workspaces_sql() -> str:
    return (
        f"SELECT workspace_id FROM {WebhookSubscription._meta.db_table} WHERE enabled"
        f" UNION SELECT workspace_id FROM {Alert._meta.db_table} WHERE enabled"
    )


def _fair_batch(*, position: str, batch_size: int) -> tuple[list[Event], str | None]:
    """Up to `batch_size` unhandled events above the cursor, round-robin across workspaces (issue 9).

    Each workspace with an enabled subscription or alert contributes its oldest unhandled events (index
    jobs_event_ws); rank 1 of every workspace is taken before rank 2 of any, so one workspace's backlog of a
    million events never holds another's event back for more than one pass. PostgreSQL does the ranking: at
    most `batch_size` rows reach Python.

    Returns the events (id order) and the highest id the cursor may move to: every eligible event at or below
    it is in this batch or handled already (None: no limit but the horizon).
    """
    mark = FanoutMark._meta.db_table
    sql = f"""
        WITH win AS (
            SELECT x.id, x.workspace_id FROM ({_subscribed_workspaces_sql()}) w,
            LATERAL (
                SELECT e.id, e.workspace_id FROM jobs_event e
                WHERE e.workspace_id = w.workspace_id AND e.id > %(position)s
                  AND NOT EXISTS (SELECT 1 FROM {mark} m WHERE m.event_id = e.id)
                ORDER BY e.id LIMIT %(batch)s
            ) x
        ), ranked AS (
            SELECT id, workspace_id, row_number() OVER (PARTITION BY workspace_id ORDER BY id) AS rn FROM win
        ), sel AS (
            SELECT id FROM ranked ORDER BY rn, id LIMIT %(batch)s
        ), per_ws AS (
            SELECT workspace_id, count(*) AS n, max(id) AS last_id,
                   min(id) FILTER (WHERE id NOT IN (SELECT id FROM sel)) AS first_left
            FROM ranked GROUP BY workspace_id
        )
        SELECT (SELECT array_agg(id) FROM sel),
               (SELECT min(first_left) FROM per_ws),
               (SELECT min(last_id) FROM per_ws WHERE n >= %(batch)s AND first_left IS NULL)
    """
    with connection.cursor() as cur:
        cur.execute(sql, {"position": position, "batch": batch_size})
        ids, first_left, full_last = cur.fetchone()
    events = list(Event.objects.filter(id__in=ids or []).order_by("id"))
    # Not in this batch: the first event left behind (so strictly below it), and anything past the window of a
    # workspace whose window was full and all taken (so at most its last id).
    bounds = [b for b in (full_last,) if b is not None]
    if first_left is not None:
        below = [e.id for e in events if e.id < first_left]
        bounds.append(max(below) if below else position)
    return events, (min(bounds) if bounds else None)


def _batch_in_id_order(*, position: str, batch_size: int) -> tuple[list[Event], str | None]:
    """SQLite (embedded mode): the next events in id order, of workspaces with a subscription or an alert."""
    subscribed = Exists(
        WebhookSubscription.objects.filter(enabled=True, workspace_id=OuterRef("workspace_id"))
    )
    alerted = Exists(Alert.objects.filter(enabled=True, workspace_id=OuterRef("workspace_id")))
    events = list(
        Event.objects.filter(id__gt=position)
        .filter(subscribed | alerted)
        .filter(~Exists(FanoutMark.objects.filter(event_id=OuterRef("id"))))
        .order_by("id")[:batch_size]
    )
    return events, (events[-1].id if len(events) == batch_size else None)


def _hint_send() -> None:
    """Send the new rows now rather than at the next beat tick; only a hint, the due sweep finds them anyway."""
    try:
        # By name, not import: tasks call services, never the other way round.
        current_app.send_task(SEND_DUE_TASK)
    except Exception:  # broker down: the beat sweep sends them within a second of it coming back
        logger.warning("could not hint alerts.send_due", exc_info=True)


def _deliveries_create(*, events: list[Event], subs: list[WebhookSubscription]) -> int:
    by_ws: dict[str, list[WebhookSubscription]] = defaultdict(list)
    for sub in subs:
        by_ws[sub.workspace_id].append(sub)
    now = timezone.now()
    rows = []
    for event in events:
        body = None
        for sub in by_ws.get(event.workspace_id, ()):
            # A subscription receives events from its creation on, not the backlog of the lag window.
            if not sub.wants(event.type) or event.id < id_floor("evt", sub.created_at):
                continue
            if body is None:
                body = json.dumps(event_to_dict(event), separators=(",", ":"))
            rows.append(
                WebhookDelivery(
                    workspace_id=event.workspace_id,
                    subscription=sub,
                    event_id=event.id,
                    event_type=event.type,
                    body=body,
                    next_attempt_at=now,
                )
            )
    if not rows:
        return 0
    # A run that repeats events (cursor reset, marks pruned early) skips the pairs that exist already; ON CONFLICT
    # DO NOTHING on alerts_delivery_sub_event_uniq covers anything that slips past this read.
    existing = set(
        WebhookDelivery.objects.filter(event_id__in={r.event_id for r in rows}).values_list(
            "subscription_id", "event_id"
        )
    )
    rows = [r for r in rows if (r.subscription_id, r.event_id) not in existing]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def _alerts_evaluate(*, events: list[Event], now: datetime) -> int:
    """Evaluate the enabled alerts whose scope saw job activity in this batch; returns notifications created."""
    touched: dict[str, set[str | None]] = defaultdict(set)
    for event in events:
        if event.type.startswith("job:") or event.type == "schedule:fired":
            touched[event.workspace_id].add(event.queue_name)
    if not touched:
        return 0
    created = 0
    alerts = Alert.objects.filter(workspace_id__in=list(touched), enabled=True).select_for_update(
        skip_locked=True
    )
    for alert in alerts.order_by("pk"):
        if alert.queue_name and alert.queue_name not in touched[alert.workspace_id]:
            continue
        kind, data = alert_evaluate(alert=alert, now=now)
        if kind is None:
            continue
        AlertNotification.objects.create(
            workspace_id=alert.workspace_id, alert=alert, kind=kind, data=data, next_attempt_at=now
        )
        created += 1
    return created


def alert_evaluate(*, alert: Alert, now: datetime) -> tuple[str | None, dict]:
    """Decide whether the alert fires, recovers or stays quiet, from the latest finished executions in its scope.

    Saves the alert's `firing` / `last_fired_at` when they change. Executions that started before the alert was
    created are not counted, so a new alert does not fire on old history.
    """
    qs = Execution.objects.filter(
        workspace_id=alert.workspace_id,
        status__in=OUTCOME_STATUSES,
        id__gte=id_floor("exe", alert.created_at),
    )
    if alert.queue_name:
        qs = qs.filter(queue__workspace_id=alert.workspace_id, queue__name=alert.queue_name)
    if alert.schedule_name:
        qs = qs.filter(
            schedule_id__in=Schedule.objects.filter(
                workspace_id=alert.workspace_id, name=alert.schedule_name
            ).values("id")
        )
    window = max(alert.consecutive_failures_threshold, STREAK_WINDOW)
    # Newest first by id (index jobs_exec_ws / jobs_exec_ws_schedule).
    rows = list(
        qs.order_by("-id").values("id", "job_id", "status", "completed_at", "error", "queue__name")[:window]
    )
    if not rows:
        return None, {}
    latest = rows[0]
    if latest["status"] == ExecutionStatus.SUCCESS:
        if not alert.firing:
            return None, {}
        Alert.objects.filter(pk=alert.pk).update(firing=False)
        alert.firing = False
        return NotificationKind.RECOVERED, {"execution": _execution_summary(latest), "at": iso(now)}
    streak = 0
    for row in rows:
        if row["status"] == ExecutionStatus.SUCCESS:
            break
        streak += 1
    if streak < alert.consecutive_failures_threshold:
        return None, {}
    if alert.firing:
        cooled = alert.last_fired_at is None or now >= alert.last_fired_at + timedelta(
            minutes=alert.cooldown_minutes
        )
        fresh = (
            latest["completed_at"] is None
            or alert.last_fired_at is None
            or latest["completed_at"] > alert.last_fired_at
        )
        if not (cooled and fresh):
            return None, {}
    Alert.objects.filter(pk=alert.pk).update(firing=True, last_fired_at=now)
    alert.firing, alert.last_fired_at = True, now
    return NotificationKind.FIRED, {
        "consecutive_failures": streak,
        "threshold": alert.consecutive_failures_threshold,
        "last_execution": _execution_summary(latest),
        "at": iso(now),
    }


def _execution_summary(row: dict) -> dict:
    return {
        "id": row["id"],
        "job_id": row["job_id"],
        "queue": row["queue__name"],
        "status": row["status"],
        "error": row["error"],
        "completed_at": iso(row["completed_at"]),
    }


def fanout_lag_seconds() -> float:
    """How far the cursor trails now (for metrics)."""
    cursor = FanoutCursor.objects.filter(name=CURSOR_NAME).first()
    if cursor is None or not cursor.position:
        return 0.0
    head = cursor.position.split("_", 1)[1][:10]
    millis = 0
    for ch in head:
        millis = millis * 32 + _ALPHABET.index(ch)
    return max(0.0, time.time() - millis / 1000)
