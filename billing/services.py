"""Plan caps, the monthly job quota, retention, and Stripe subscriptions."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import Workspace
from config.exceptions import (
    BadRequest,
    BillingNotConfigured,
    Conflict,
    PlanLimit,
    QuotaExceeded,
    ServiceUnavailable,
    ValidationFailed,
)

from .models import Plan, StripeEvent, UsageCounter
from .stripe_client import stripe_client

logger = logging.getLogger(__name__)

# Minute rollups outlive short plans: /v1/usage reports the current month and the two before it from them
# (92 days always covers both whole months).
ROLLUP_MIN_RETENTION_DAYS = 92
PAID_PLANS = ("pro", "team")


def current_period(now: datetime | None = None) -> date:
    now = now or timezone.now()
    return now.astimezone(UTC).date().replace(day=1)


def next_period(period: date) -> date:
    return (period.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_start(period: date) -> datetime:
    return datetime(period.year, period.month, 1, tzinfo=UTC)


# --- quota ---------------------------------------------------------------------------------------


def quota_consume(*, workspace: Workspace, count: int, now: datetime | None = None) -> int:
    """Count `count` new jobs against this month's quota, or raise QuotaExceeded and count nothing.

    Must run inside the enqueue transaction (DESIGN.md invariant 2): a rollback gives the quota back. Race-free:
    on PostgreSQL one upsert whose ON CONFLICT DO UPDATE takes the counter's row lock and re-checks the limit on
    the latest row version, so parallel enqueues serialise on the row and never push `jobs_enqueued` past the
    limit. Returns the new usage.
    """
    if count <= 0:
        return 0
    if connection.vendor == "postgresql":
        sql, params = quota_consume_statement(workspace=workspace, count=count, now=now)
        with connection.cursor() as cursor:
            # One round trip on the enqueue hot path; the unique (workspace, period) constraint is the arbiter.
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            return int(row[0])
        raise quota_exceeded(workspace=workspace, now=now)
    period = current_period(now)
    limit = workspace.plan.jobs_per_month
    if limit is not None and count > limit:
        raise quota_exceeded(workspace=workspace, now=now)
    # SQLite: the connection already holds the write lock (BEGIN IMMEDIATE), so this cannot race.
    UsageCounter.objects.bulk_create(
        [UsageCounter(workspace=workspace, period=period, jobs_enqueued=0)], ignore_conflicts=True
    )
    counters = UsageCounter.objects.filter(workspace=workspace, period=period)
    if limit is not None:
        counters = counters.filter(jobs_enqueued__lte=limit - count)
    if counters.update(jobs_enqueued=F("jobs_enqueued") + count):
        return UsageCounter.objects.get(workspace=workspace, period=period).jobs_enqueued
    raise quota_exceeded(workspace=workspace, now=now)


def quota_consume_statement(*, workspace: Workspace, count: int, now: datetime | None = None) -> tuple[str, list[Any]]:
    """PostgreSQL: quota_consume's conditional upsert as (sql, params), for a caller that sends it with other
    statements of its transaction in one round trip. It returns one row (the new usage), or none when the
    quota is short: the caller must then raise `quota_exceeded(...)` so its transaction rolls back.

    Sent last before COMMIT, the upsert holds the counter's row lock (which serialises a workspace's enqueues)
    for as short a time as possible.
    """
    period = current_period(now)
    limit = workspace.plan.jobs_per_month
    over = limit is not None and count > limit  # more than the whole month's quota: matches no row
    params: list[Any] = [workspace.id, period, count, count]
    condition = ""
    if over:
        condition = " WHERE false"
    elif limit is not None:
        condition = " WHERE billing_usagecounter.jobs_enqueued + %s <= %s"
        params += [count, limit]
    sql = (
        "INSERT INTO billing_usagecounter (workspace_id, period, jobs_enqueued)"
        + (" SELECT %s, %s, %s WHERE false" if over else " VALUES (%s, %s, %s)")
        + " ON CONFLICT (workspace_id, period) DO UPDATE"
        " SET jobs_enqueued = billing_usagecounter.jobs_enqueued + %s"
        f"{condition} RETURNING jobs_enqueued"
    )
    return sql, params


def quota_exceeded(*, workspace: Workspace, now: datetime | None = None) -> QuotaExceeded:
    """The QuotaExceeded error for this workspace's current period (with its usage and limit)."""
    period = current_period(now)
    return QuotaExceeded(
        details={
            "used": quota_used(workspace=workspace, period=period),
            "limit": workspace.plan.jobs_per_month,
            "plan": workspace.plan_id,
        }
    )


def quota_used(*, workspace: Workspace, period: date | None = None) -> int:
    period = period or current_period()
    used = (
        UsageCounter.objects.filter(workspace=workspace, period=period)
        .values_list("jobs_enqueued", flat=True)
        .first()
    )
    return int(used or 0)


def quota_release(*, workspace: Workspace, count: int, now: datetime | None = None) -> None:
    """Give back quota that was counted for jobs that were then not created (e.g. idempotent replays)."""
    if count <= 0:
        return
    with transaction.atomic():
        UsageCounter.objects.filter(
            workspace=workspace, period=current_period(now), jobs_enqueued__gte=count
        ).update(jobs_enqueued=F("jobs_enqueued") - count)


# --- plan caps -----------------------------------------------------------------------------------


def plan_check_count(*, workspace: Workspace, resource: str, current: int, adding: int = 1) -> None:
    """Raise PlanLimit if `current + adding` exceeds the plan's cap for `resource` (queues, schedules, alerts).

    Callers count `current` inside the creating transaction after locking the workspace row
    (`Workspace.objects.select_for_update()`), so two parallel creates cannot both pass the last slot.
    """
    limit = getattr(workspace.plan, f"max_{resource}")
    if limit is not None and current + adding > limit:
        raise PlanLimit(
            f"The {workspace.plan.name} plan allows {limit} {resource}.",
            details={"limit": limit, "plan": workspace.plan_id, "resource": resource},
        )


_VALUE_CAPS = {
    "max_attempts": "max_attempts",
    "timeout_ms": "max_timeout_ms",
    "max_timeout_ms": "max_timeout_ms",
}


def plan_check_value(*, workspace: Workspace, field: str, value: int | None) -> None:
    """Raise PlanLimit if a per-object value (max_attempts, timeout_ms) is above the plan's cap."""
    if value is None:
        return
    limit = getattr(workspace.plan, _VALUE_CAPS[field])
    if limit is not None and value > limit:
        raise PlanLimit(
            f"The {workspace.plan.name} plan allows at most {limit} for {field}.",
            details={"limit": limit, "plan": workspace.plan_id, "field": field},
        )


# --- retention -----------------------------------------------------------------------------------


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
    jobs: int = 0
    executions: int = 0
    events: int = 0
    deliveries: int = 0
    notifications: int = 0
    rollups: int = 0
    tokens: int = 0


def _retention_jobs(*, workspaces: QuerySet, cutoff: datetime, batch_rows: int) -> dict[str, int]:
    """Finished jobs, executions and events of `workspaces` older than `cutoff`."""
    from jobs.models import TERMINAL_STATES, Event, Execution, ExecutionStatus, Job

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
    # By label, not import: alerts sits to billing's right (STYLE.md app order).
    counts = {}
    for key, label in (
        ("deliveries", "alerts.WebhookDelivery"),
        ("notifications", "alerts.AlertNotification"),
    ):
        model = apps.get_model(label)
        # Served by alerts_delivery_created / alerts_notification_created.
        counts[key] = _delete_in_batches(
            model.objects.filter(
                workspace__in=workspaces, created_at__lt=cutoff, status__in=("success", "failed")
            ),
            batch_rows=batch_rows,
        )
    return counts


def _retention_rollups(*, workspaces: QuerySet, cutoff: datetime, batch_rows: int) -> dict[str, int]:
    from jobs.models import QueueMinuteStat

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
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

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


# --- usage ---------------------------------------------------------------------------------------


def parse_period(raw: str | None, *, now: datetime | None = None) -> date:
    """`YYYY-MM` (default: the current month) -> the month's first day; anything else is 400 BAD_REQUEST."""
    if raw in (None, ""):
        return current_period(now)
    try:
        if len(raw) != 7:
            raise ValueError
        parsed = datetime.strptime(raw, "%Y-%m").date()
    except ValueError:
        raise BadRequest(
            "`period` must be a month as YYYY-MM.", details={"period": ["Expected YYYY-MM."]}
        ) from None
    if not 2000 <= parsed.year <= 9998:  # 9999-12 has no next month to end the period with (OverflowError)
        raise BadRequest("`period` must be a month as YYYY-MM.", details={"period": ["Expected YYYY-MM."]})
    return parsed


# --- Stripe --------------------------------------------------------------------------------------


def plan_price_id(plan: Plan) -> str:
    """The Stripe price of a plan: set on the plan by staff, else STRIPE_PRICE_<CODE> from settings."""
    return plan.stripe_price_id or getattr(settings, f"STRIPE_PRICE_{plan.code.upper()}", "") or ""


def plan_for_price(price_id: str) -> Plan | None:
    if not price_id:
        return None
    plan = Plan.objects.filter(stripe_price_id=price_id).first()
    if plan is not None:
        return plan
    for code in PAID_PLANS:
        if getattr(settings, f"STRIPE_PRICE_{code.upper()}", "") == price_id:
            return Plan.objects.filter(code=code).first()
    return None


def _stripe_call(fn: Any, **kwargs: Any) -> Any:
    """A Stripe API call; its failures become 503 without leaking provider details."""
    import stripe  # imported on use: the library costs ~30 MB in every process that never bills

    try:
        return fn(**kwargs)
    except stripe.StripeError as exc:
        logger.warning("stripe call failed: %s", exc)
        raise ServiceUnavailable("The payment provider could not be reached; try again later.") from None


def billing_customer_ensure(*, workspace: Workspace) -> str:
    """The workspace's Stripe customer id, creating the customer on first use."""
    if workspace.stripe_customer_id:
        return workspace.stripe_customer_id
    client = stripe_client()
    owner = workspace.owner
    params: dict[str, Any] = {"name": workspace.name, "metadata": {"workspace_id": workspace.id}}
    if owner is not None and owner.email:
        params["email"] = owner.email
    # Outside any transaction (slow I/O). Stripe's idempotency key makes two parallel first calls get one
    # customer; the conditional UPDATE keeps whichever id was saved first.
    customer = _stripe_call(
        client.v1.customers.create,
        params=params,
        options={"idempotency_key": f"spindle-customer-{workspace.id}"},
    )
    Workspace.objects.filter(pk=workspace.pk, stripe_customer_id="").update(
        stripe_customer_id=customer["id"], updated_at=timezone.now()
    )
    workspace.refresh_from_db(fields=["stripe_customer_id"])
    return workspace.stripe_customer_id


def billing_checkout_create(*, workspace: Workspace, plan_code: str) -> str:
    """A Stripe Checkout session URL subscribing the workspace to a paid plan."""
    client = stripe_client()
    plan = Plan.objects.filter(code=plan_code).first()
    price = plan_price_id(plan) if plan is not None else ""
    if plan is None or plan.code == "free" or not price:
        choices = [p for p in PAID_PLANS if plan_price_id(Plan(code=p))]
        raise ValidationFailed(details={"plan": [f"Not a plan you can buy here; choose one of {choices}."]})
    if workspace.stripe_subscription_id and workspace.subscription_status in (
        "active",
        "trialing",
        "past_due",
    ):
        raise Conflict(
            "This workspace already has a subscription; change it in the billing portal.",
            details={"plan": workspace.plan_id, "subscription_status": workspace.subscription_status},
        )
    customer_id = billing_customer_ensure(workspace=workspace)
    session = _stripe_call(
        client.v1.checkout.sessions.create,
        params={
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": workspace.id,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": settings.BILLING_SUCCESS_URL,
            "cancel_url": settings.BILLING_CANCEL_URL,
            "metadata": {"workspace_id": workspace.id, "plan": plan.code},
            "subscription_data": {"metadata": {"workspace_id": workspace.id, "plan": plan.code}},
        },
    )
    return session["url"]


def billing_portal_create(*, workspace: Workspace) -> str:
    """A Stripe billing-portal session URL for the workspace's customer (created on demand)."""
    client = stripe_client()
    customer_id = billing_customer_ensure(workspace=workspace)
    session = _stripe_call(
        client.v1.billing_portal.sessions.create,
        params={
            "customer": customer_id,
            "return_url": getattr(settings, "BILLING_PORTAL_RETURN_URL", "") or settings.BILLING_SUCCESS_URL,
        },
    )
    return session["url"]


# Subscription statuses that keep the paid plan; anything else (canceled, unpaid, incomplete_expired,
# incomplete) leaves or keeps the workspace on free.
_PAID_STATUSES = frozenset({"active", "trialing", "past_due"})


def _workspace_for(obj: dict[str, Any]) -> Workspace | None:
    metadata = obj.get("metadata") or {}
    workspace_id = obj.get("client_reference_id") or metadata.get("workspace_id")
    queryset = Workspace.objects.select_for_update()
    if workspace_id:
        workspace = queryset.filter(pk=workspace_id).first()
        if workspace is not None:
            return workspace
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if customer:
        return queryset.filter(stripe_customer_id=customer).order_by("created_at").first()
    return None


def _subscription_price(sub: dict[str, Any]) -> str:
    items = ((sub.get("items") or {}).get("data")) or []
    if items:
        price = items[0].get("price") or {}
        return price.get("id", "") if isinstance(price, dict) else str(price)
    plan = sub.get("plan") or {}
    return plan.get("id", "") if isinstance(plan, dict) else ""


def _apply_subscription(
    workspace: Workspace, sub: dict[str, Any], *, event_at: datetime, deleted: bool
) -> None:
    if workspace.billing_synced_at is not None and event_at < workspace.billing_synced_at:
        return  # an older event delivered late: a newer state is already applied
    if workspace.stripe_subscription_id and workspace.stripe_subscription_id != sub.get("id") and deleted:
        return  # the end of a subscription the workspace already replaced
    status = "canceled" if deleted else str(sub.get("status") or "")
    if not deleted and status in _PAID_STATUSES:
        plan = plan_for_price(_subscription_price(sub))
        if plan is None:
            logger.error("stripe subscription %s has an unknown price; plan unchanged", sub.get("id"))
        else:
            workspace.plan = plan
        workspace.stripe_subscription_id = sub.get("id") or workspace.stripe_subscription_id
    else:
        workspace.plan_id = "free"
        if deleted:
            workspace.stripe_subscription_id = ""
    workspace.subscription_status = status
    workspace.billing_synced_at = event_at
    customer = sub.get("customer")
    if isinstance(customer, str) and customer and not workspace.stripe_customer_id:
        workspace.stripe_customer_id = customer
    workspace.save(
        update_fields=[
            "plan",
            "stripe_subscription_id",
            "subscription_status",
            "billing_synced_at",
            "stripe_customer_id",
            "updated_at",
        ]
    )


def _apply_checkout_completed(workspace: Workspace, session: dict[str, Any], *, event_at: datetime) -> None:
    fields = ["updated_at"]
    customer = session.get("customer")
    if isinstance(customer, str) and customer and not workspace.stripe_customer_id:
        workspace.stripe_customer_id = customer
        fields.append("stripe_customer_id")
    subscription = session.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    if subscription:
        workspace.stripe_subscription_id = subscription
        fields.append("stripe_subscription_id")
    plan_code = (session.get("metadata") or {}).get("plan")
    newer_known = workspace.billing_synced_at is not None and event_at < workspace.billing_synced_at
    plan = Plan.objects.filter(code=plan_code).first() if plan_code else None
    if (
        plan is not None
        and plan_price_id(plan)
        and not newer_known
        and session.get("payment_status") != "unpaid"
    ):
        # The subscription events carry the truth too; applying the plan now spares the user the wait.
        workspace.plan = plan
        workspace.subscription_status = "active"
        workspace.billing_synced_at = event_at
        fields += ["plan", "subscription_status", "billing_synced_at"]
    workspace.save(update_fields=fields)


def _apply_payment_failed(workspace: Workspace, invoice: dict[str, Any]) -> None:
    subscription = invoice.get("subscription")
    if subscription and workspace.stripe_subscription_id and subscription != workspace.stripe_subscription_id:
        return
    workspace.subscription_status = "past_due"
    workspace.save(update_fields=["subscription_status", "updated_at"])


HANDLED_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.payment_failed",
    }
)


def stripe_webhook_handle(*, payload: bytes, signature: str | None) -> dict[str, Any]:
    """Verify a Stripe webhook and apply it once: a repeated event id is acknowledged and changes nothing."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise BillingNotConfigured("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    import stripe

    try:
        stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise BadRequest(
            "The Stripe-Signature header does not match the payload.",
            details={"stripe_signature": ["Invalid signature."]},
        ) from None
    except ValueError:
        raise BadRequest("The webhook payload is not valid JSON.") from None
    event = json.loads(payload)
    event_id = str(event.get("id") or "")
    event_type = str(event.get("type") or "")
    if not event_id:
        raise BadRequest("The webhook event has no id.")
    obj = ((event.get("data") or {}).get("object")) or {}
    event_at = datetime.fromtimestamp(int(event.get("created") or timezone.now().timestamp()), tz=UTC)
    try:
        with transaction.atomic():
            # Recorded in the same transaction as its effect: a crash applies both or neither.
            record = StripeEvent.objects.create(event_id=event_id, type=event_type)
            workspace = _workspace_for(obj) if event_type in HANDLED_EVENTS else None
            if workspace is not None:
                if event_type == "checkout.session.completed":
                    _apply_checkout_completed(workspace, obj, event_at=event_at)
                elif event_type.startswith("customer.subscription."):
                    _apply_subscription(
                        workspace,
                        obj,
                        event_at=event_at,
                        deleted=event_type == "customer.subscription.deleted",
                    )
                elif event_type == "invoice.payment_failed":
                    _apply_payment_failed(workspace, obj)
                record.workspace_id = workspace.id
                record.save(update_fields=["workspace_id"])
            elif event_type in HANDLED_EVENTS:
                logger.warning("stripe event %s (%s) matches no workspace", event_id, event_type)
    except IntegrityError as exc:
        if (
            "billing_stripe_event_id_uniq" in str(exc)
            or StripeEvent.objects.filter(event_id=event_id).exists()
        ):
            return {"received": True, "duplicate": True}
        raise
    return {"received": True, "duplicate": False}
