from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, throttle_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.views import strict_body
from config.api import error_responses, public_post
from config.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from config.ratelimit import request_rate_limit

from . import selectors, services
from .serializers import CheckoutInSerializer
from .stripe_client import stripe_client


class _QuotaJobsSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True, help_text="null: unlimited")
    resets_at = serializers.DateTimeField()


StatusOut = inline_serializer(
    "WorkspaceStatusOut",
    fields={
        "status": serializers.CharField(),
        "workspace": inline_serializer(
            "WorkspaceStatusWorkspace",
            fields={
                "id": serializers.CharField(),
                "name": serializers.CharField(),
                "plan": serializers.CharField(),
            },
        ),
        "quota": inline_serializer("WorkspaceStatusQuota", fields={"jobs": _QuotaJobsSerializer()}),
        "rate_limit": inline_serializer(
            "WorkspaceStatusRateLimit",
            fields={
                "limit": serializers.IntegerField(
                    allow_null=True, help_text="requests/minute; null: unlimited"
                ),
                "remaining": serializers.IntegerField(allow_null=True),
            },
        ),
    },
)

UrlOut = inline_serializer("BillingUrlOut", fields={"url": serializers.URLField()})


@extend_schema(
    tags=["Billing"],
    responses={200: StatusOut, **error_responses(401, 429)},
    description="The workspace, its plan, this month's job quota and the rate limit left in this minute.",
)
@api_view(["GET"])
def workspace_status(request: Request) -> Response:
    workspace = request.user.workspace
    rate = request_rate_limit(request)
    return Response(
        {
            "status": "ok",
            "workspace": {"id": workspace.id, "name": workspace.name, "plan": workspace.plan_id},
            "quota": {"jobs": selectors.quota_summary(workspace=workspace)},
            "rate_limit": {
                "limit": rate.limit if rate else workspace.plan.requests_per_minute,
                "remaining": rate.remaining if rate else None,
            },
        }
    )


@extend_schema(
    tags=["Billing"],
    responses={
        200: inline_serializer(
            "BillingStatusOut",
            fields={
                "billing_enabled": serializers.BooleanField(help_text="false: Stripe is not configured here"),
                "plan": serializers.CharField(),
                "subscription_status": serializers.CharField(allow_null=True),
                "has_customer": serializers.BooleanField(),
                "has_subscription": serializers.BooleanField(),
            },
        ),
        **error_responses(401, 429),
    },
    description="The workspace's plan and Stripe subscription state. Answers even when billing is not configured.",
)
@api_view(["GET"])
def billing_status(request: Request) -> Response:
    return Response(selectors.billing_status(workspace=request.user.workspace))


@extend_schema(
    tags=["Billing"],
    request=CheckoutInSerializer,
    parameters=[IDEMPOTENCY_KEY_PARAMETER],
    responses={200: UrlOut, **error_responses(400, 401, 409, 415, 422, 429, 503)},
    description="A Stripe Checkout URL subscribing the workspace to `plan`. 409 if it already has a subscription "
    "(use the portal); 503 SERVICE_UNAVAILABLE when billing is not configured or Stripe is unreachable.",
)
@api_view(["POST"])
@idempotent
def checkout(request: Request) -> Response:
    stripe_client()  # 503 before validation when billing is off: the clearer answer
    serializer = CheckoutInSerializer(data=strict_body(request, {"plan"}))
    serializer.is_valid(raise_exception=True)
    url = services.billing_checkout_create(
        workspace=request.user.workspace, plan_code=serializer.validated_data["plan"]
    )
    return Response({"url": url})


@extend_schema(
    tags=["Billing"],
    request=None,
    responses={200: UrlOut, **error_responses(401, 429, 503)},
    description="A Stripe billing-portal URL for the workspace (the Stripe customer is created on demand).",
)
@api_view(["POST"])
def portal(request: Request) -> Response:
    strict_body(request, set())
    return Response({"url": services.billing_portal_create(workspace=request.user.workspace)})


@extend_schema(
    tags=["Billing"],
    auth=[],
    request={"application/json": {"type": "object", "description": "A Stripe event"}},
    responses={
        200: inline_serializer(
            "StripeWebhookOut",
            fields={"received": serializers.BooleanField(), "duplicate": serializers.BooleanField()},
        ),
        **error_responses(400, 503),
    },
    description="Stripe's webhook endpoint (public; the Stripe-Signature header is verified). Handles "
    "checkout.session.completed, customer.subscription.created/updated/deleted and invoice.payment_failed; "
    "a repeated event id is acknowledged without effect.",
)
@public_post
@throttle_classes([])
def stripe_webhook(request: Request) -> Response:
    # The raw body, never request.data: the signature covers the exact bytes Stripe sent.
    return Response(
        services.stripe_webhook_handle(
            payload=request.body, signature=request.META.get("HTTP_STRIPE_SIGNATURE")
        )
    )
