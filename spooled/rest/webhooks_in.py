"""Inbound webhooks -> jobs, their settings (secrets and target queue, per workspace) and the inbound log."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from queues.events import iso, shape_of
from spooled import ingest
from spooled.models import InboundDelivery, IngestSettings
from spooled.rest.auth import PublicView
from spooled.rest.base import SpooledView, query_when
from spooled.rest.paging import paged


class GithubIngestView(PublicView):
    def post(self, request: Request, org_id: str) -> Response:
        headers = request.headers
        result = ingest.ingest_github(
            org_id=org_id,
            raw=request.body,
            signature=headers.get("X-Hub-Signature-256"),
            event=headers.get("X-GitHub-Event", ""),
            delivery=headers.get("X-GitHub-Delivery", "")[:200],
        )
        return Response(result, status=202)


class StripeIngestView(PublicView):
    def post(self, request: Request, org_id: str) -> Response:
        signature = request.headers.get("Stripe-Signature")
        return Response(
            ingest.ingest_stripe(org_id=org_id, raw=request.body, signature=signature), status=202
        )


class CustomIngestView(PublicView):
    def post(self, request: Request, org_id: str) -> Response:
        body = self.body(request)
        body.only("queue_name", "payload", "event_type", "idempotency_key", "priority")
        body.text("queue_name", required=True, max_length=100)
        body.text("event_type", max_length=128)
        body.text("idempotency_key", max_length=255)
        body.integer("priority", -100, 100)
        if "payload" not in body.data:
            body.errors["payload"] = ["This field is required."]
        token = request.headers.get("X-Webhook-Token")
        if body.errors:
            # Verify first: an unauthenticated caller learns nothing from field errors.
            ingest.ingest_custom(org_id=org_id, token=token, body=None, verify_only=True)
        body.done()
        return Response(ingest.ingest_custom(org_id=org_id, token=token, body=body.data), status=202)


def _settings_shape(found: IngestSettings) -> dict[str, Any]:
    return {
        "queue_name": found.queue_name,
        "github_secret_set": bool(found.github_secret),
        "stripe_secret_set": bool(found.stripe_secret),
        "updated_at": iso(found.updated_at),
    }


class IngestSettingsView(SpooledView):
    """Spindle's addition: where GitHub and Stripe deliveries go, and the secrets that verify them (write-only)."""

    def get(self, request: Request) -> Response:
        self.require_unscoped()
        return Response(_settings_shape(ingest.ingest_settings(self.workspace)))

    def put(self, request: Request) -> Response:
        self.require_unscoped()
        body = self.body(request)
        body.only("queue_name", "github_secret", "stripe_secret")
        changes = {
            "queue_name": body.text("queue_name", max_length=64),
            "github_secret": body.text("github_secret", max_length=200),
            "stripe_secret": body.text("stripe_secret", max_length=200),
        }
        if "queue_name" in body.data and body.data["queue_name"] is None:
            body.errors["queue_name"] = ["A queue is needed: leave the field out to keep the current one."]
        body.done()
        # An explicit null clears a secret; a field left out keeps it.
        changes = {k: v or "" for k, v in changes.items() if k in body.data}
        found = ingest.ingest_settings_update(self.workspace, changes)
        return Response(_settings_shape(found))


class WebhookTokenView(SpooledView):
    def get(self, request: Request) -> Response:
        self.require_unscoped()
        return Response(_token_shape(request, ingest.ingest_settings(self.workspace)))


class WebhookTokenRegenerateView(SpooledView):
    def post(self, request: Request) -> Response:
        self.require_unscoped()
        return Response(_token_shape(request, ingest.custom_token_regenerate(self.workspace)))


def _token_shape(request: Request, found: IngestSettings) -> dict[str, Any]:
    url = request.build_absolute_uri(f"/api/v1/webhooks/{found.workspace_id}/custom")
    return {"webhook_token": found.custom_token, "webhook_url": url}


class InboundDeliveriesView(SpooledView):
    def get(self, request: Request) -> Response:
        self.require_unscoped()
        rows = ingest.inbound_log(self.workspace)
        params = request.query_params
        if params.get("status"):
            rows = rows.filter(status=params["status"])
        if params.get("queue_name"):
            rows = rows.filter(matched_queue=params["queue_name"])
        if params.get("since"):
            rows = rows.filter(created_at__gte=query_when(params["since"], "since"))
        return paged(request, rows, _delivery_shape)


def _delivery_shape(row: InboundDelivery) -> dict[str, Any]:
    return shape_of(row, "id provider event_type matched_queue job_id status created_at")
