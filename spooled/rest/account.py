"""API keys (with Spooled's scopes: queues, rate_limit, expires_at) and billing status and portal."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiKey
from billing.services import billing_portal_create
from queues.events import shape_of
from spooled import services
from spooled.rest.base import SpooledView


def key_shape(key: ApiKey) -> dict[str, Any]:
    return shape_of(
        key,
        "id organization_id=workspace_id name key_prefix=prefix queues rate_limit is_active created_at"
        " last_used=last_used_at expires_at",
        queues=list(key.queues or []),
        is_active=key.revoked_at is None,
    )


class ApiKeysView(SpooledView):
    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.filter(workspace=self.workspace).order_by("created_at")[:1000]
        return Response([key_shape(k) for k in keys])

    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only("name", "queues", "rate_limit", "expires_at")
        name = body.text("name", required=True, max_length=100)
        queues = body.text_list("queues", max_items=100, max_length=64)
        rate_limit = body.integer("rate_limit", 1, 1_000_000)
        expires_at = body.when("expires_at")
        body.done()
        issued = services.api_key_create_scoped(
            workspace=self.workspace,
            caller=self.scope_key(),
            name=name,
            queues=queues,
            rate_limit=rate_limit,
            expires_at=expires_at,
        )
        shape = key_shape(issued.key)
        return Response({**shape, "key": issued.raw}, status=201)


class ApiKeyView(SpooledView):
    def get(self, request: Request, key_id: str) -> Response:
        key = ApiKey.objects.filter(workspace=self.workspace, id=key_id).first()
        if key is None:
            raise services.NotFound("API key not found.")
        return Response(key_shape(key))

    def put(self, request: Request, key_id: str) -> Response:
        body = self.body(request)
        body.only("name", "queues", "rate_limit", "is_active")
        changes = {
            "name": body.text("name", max_length=100),
            "queues": body.text_list("queues", max_items=100, max_length=64),
            "rate_limit": body.integer("rate_limit", 1, 1_000_000),
            "is_active": body.boolean("is_active"),
        }
        body.done()
        changes = {k: v for k, v in changes.items() if v is not None}
        key = services.api_key_update_scoped(
            workspace=self.workspace, caller=self.scope_key(), key_id=key_id, changes=changes
        )
        return Response(key_shape(key))

    def delete(self, request: Request, key_id: str) -> Response:
        services.api_key_update_scoped(
            workspace=self.workspace, caller=self.scope_key(), key_id=key_id, changes={"is_active": False}
        )
        return Response(status=204)


class BillingStatusView(SpooledView):
    def get(self, request: Request) -> Response:
        workspace = self.workspace
        return Response(
            {
                "plan_tier": workspace.plan_id,
                "has_stripe_customer": bool(workspace.stripe_customer_id),
                "stripe_subscription_id": workspace.stripe_subscription_id or None,
                "stripe_subscription_status": workspace.subscription_status or None,
                "stripe_current_period_end": None,
                "stripe_cancel_at_period_end": None,
            }
        )


class BillingPortalView(SpooledView):
    def post(self, request: Request) -> Response:
        self.one_text(request, "return_url", max_length=2048)
        # The portal returns to the installation's BILLING_PORTAL_RETURN_URL: a caller-chosen return address
        # would make the billing portal an open redirect.
        return Response({"url": billing_portal_create(workspace=self.workspace)})
