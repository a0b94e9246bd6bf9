"""Housekeeping: retention, the one place that deletes old rows, hourly (task `billing.apply_retention`).

It sits in alerts, the highest app whose tables it prunes, so every import points down. The tables, in the
order each run prunes them (DESIGN.md "Retention"), per workspace plan `retention_days` (null keeps everything):

- jobs_execution: finished executions started before the cutoff (never a running one);
- jobs_job: terminal jobs finished before the cutoff (index jobs_job_finished), with their executions;
- jobs_event: outbox events created before the cutoff (jobs_event_created);
- alerts_webhookdelivery: sent or given-up webhook deliveries (alerts_delivery_created);
- alerts_alertnotification: sent or given-up alert notifications (alerts_notification_created);
- jobs_queueminutestat: minute rollups, kept max(retention_days, ROLLUP_MIN_RETENTION_DAYS) (jobs_stat_ws_minute);
- token_blacklist_outstandingtoken: expired JWT refresh tokens, whatever the plan (blacklist rows cascade).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import Plan, Workspace
from jobs.models import TERMINAL_STATES, Execution, ExecutionStatus, Job
from queues.models import Event, QueueMinuteStat

from .models import AlertNotification, WebhookDelivery

logger = logging.getLogger(__name__)

# Minute rollups outlive short plans: /v1/usage reports the current month and the two before it from them
# (92 days always covers both whole months).
ROLLUP_MIN_RETENTION_DAYS = 92


def _delete_in_batches(queryset: QuerySet, *, batch_rows: int, before_delete: Any = None) -> int:
    """Delete the rows of `queryset` `batch_rows` at a time, each batch its own short transaction.

    Short transactions matter here: a long DELETE would hold back every SKIP LOCKED claimer (DESIGN.md).
    """
    model = queryset.model
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_rows])
        if not ids:
            return deleted
        with transaction.atomic():
            if before_delete is not None:
                before_delete(ids)
            # Through the ORM so cascades other apps declare on these models are honoured.
            model.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_rows:
            return deleted


@dataclass(frozen=True)
class RetentionResult:
    """Rows deleted by one run, per pruned table (see the module docstring)."""

    jobs: int = 0
    executions: int = 0
    events: int = 0
    deliveries: int = 0
    notifications: int = 0
    rollups: int = 0
    tokens: int = 0


def _retention_jobs(*, workspaces: QuerySet, cutoff: datetime, batch_rows: int) -> dict[str, int]:
    """Finished jobs, executions and events of `workspaces` older than `cutoff`."""
    # Executions first (their jobs may still be alive, e.g. long-delayed retries); never a running one.
    executions = _delete_in_batches(
        Execution.objects.filter(workspace__in=workspaces, started_at__lt=cutoff).exclude(
            status=ExecutionStatus.RUNNING
        ),
        batch_rows=batch_rows,
    )

    def _detach(ids: list[str]) -> None:
        # Execution rows of these jobs (any age) go with them; children outlive a deleted parent.
        Execution.objects.filter(job_id__in=ids).delete()
        Job.objects.filter(parent_id__in=ids).update(parent=None)

    # Served by the partial index jobs_job_finished (finished_at IS NOT NULL).
    jobs = _delete_in_batches(
        Job.objects.filter(
            workspace__in=workspaces, finished_at__lt=cutoff, state__in=[s.value for s in TERMINAL_STATES]
        ).only("pk"),
        batch_rows=batch_rows,
        before_delete=_detach,
    )
    # Served by jobs_event_created.
    events = _delete_in_batches(
        Event.objects.filter(workspace__in=workspaces, created_at__lt=cutoff), batch_rows=batch_rows
    )
    return {"jobs": jobs, "executions": executions, "events": events}


def _retention_outbound(*, workspaces: QuerySet, cutoff: datetime, batch_rows: int) -> dict[str, int]:
    """Sent or given-up webhook deliveries and alert notifications older than `cutoff`; pending ones are
    still being retried (alerts/outbound.py gives every row a terminal status) and stay."""
    counts = {}
    for key, model in (("deliveries", WebhookDelivery), ("notifications", AlertNotification)):
        # Served by alerts_delivery_created / alerts_notification_created.
        counts[key] = _delete_in_batches(
            model.objects.filter(
                workspace__in=workspaces, created_at__lt=cutoff, status__in=("success", "failed")
            ),
            batch_rows=batch_rows,
        )
    return counts


def _retention_rollups(*, workspaces: QuerySet, cutoff: datetime, batch_rows: int) -> dict[str, int]:
    # Served by jobs_stat_ws_minute (workspace, minute).
    rollups = _delete_in_batches(
        QueueMinuteStat.objects.filter(workspace__in=workspaces, minute__lt=cutoff), batch_rows=batch_rows
    )
    return {"rollups": rollups}


def _retention_tokens(*, now: datetime, batch_rows: int) -> int:
    """simplejwt's `flushexpiredtokens` (expired outstanding tokens; their blacklist rows cascade), batched.

    An expired refresh token is refused on its `exp` alone, so neither row is needed any more. Ordered by
    the primary key (the model's default ordering is by user, a sort of every expired row per batch): ids
    grow with issue time and refresh lifetimes are fixed, so the expired rows are the lowest ids.
    """
    return _delete_in_batches(
        OutstandingToken.objects.filter(expires_at__lte=now).order_by("pk"), batch_rows=batch_rows
    )


def retention_apply(*, now: datetime | None = None, batch_rows: int | None = None) -> RetentionResult:
    """Delete what each plan no longer keeps, in bounded batches (settings.RETENTION_BATCH_ROWS).

    Per workspace plan (`retention_days`; null keeps everything): finished jobs, executions, events, sent or
    failed webhook deliveries and alert notifications. Minute rollups are kept
    max(retention_days, ROLLUP_MIN_RETENTION_DAYS) because `/v1/usage` reports past months from them.
    Expired JWT refresh tokens go whatever the plan.
    """
    now = now or timezone.now()
    batch_rows = batch_rows or settings.RETENTION_BATCH_ROWS
    totals: Counter[str] = Counter()
    for plan in Plan.objects.filter(retention_days__isnull=False):
        cutoff = now - timedelta(days=plan.retention_days)
        rollup_cutoff = now - timedelta(days=max(plan.retention_days, ROLLUP_MIN_RETENTION_DAYS))
        workspaces = Workspace.objects.filter(plan=plan).values("id")
        totals.update(_retention_jobs(workspaces=workspaces, cutoff=cutoff, batch_rows=batch_rows))
        totals.update(_retention_outbound(workspaces=workspaces, cutoff=cutoff, batch_rows=batch_rows))
        totals.update(_retention_rollups(workspaces=workspaces, cutoff=rollup_cutoff, batch_rows=batch_rows))
    totals["tokens"] = _retention_tokens(now=now, batch_rows=batch_rows)
    result = RetentionResult(**totals)
    logger.info("retention applied: %s", result)
    return result
