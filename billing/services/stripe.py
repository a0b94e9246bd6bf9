"""Stripe subscriptions: Checkout and billing-portal sessions, and the verified, once-only webhook."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Plan, Workspace
from config.exceptions import BadRequest, BillingNotConfigured, Conflict, ServiceUnavailable, ValidationFailed

from ..models import StripeEvent
from ..stripe_client import stripe_client

logger = logging.getLogger(__name__)

PAID_PLANS = ("pro", "team")


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
