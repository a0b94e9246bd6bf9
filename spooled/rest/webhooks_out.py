"""Outgoing webhooks (`/outgoing-webhooks`): Spindle's event subscriptions in Spooled's shape, with test,
deliveries and retry. The signing secret is Spindle's own (Standard Webhooks), returned once on create."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors, services
from alerts.models import WebhookDelivery, WebhookSubscription
from alerts.serializers import WebhookIn
from config.api import validated
from queues.events import iso
from spooled import outgoing
from spooled.rest.base import Body, SpooledView
from spooled.rest.paging import paged

FIELDS = ("name", "url", "events", "secret", "enabled", "format")


def webhook_shape(sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "organization_id": sub.workspace_id,
        "name": sub.description or sub.id,
        "url": sub.url,
        "events": outgoing.events_from_spindle(sub.events),
        "enabled": sub.enabled,
        "format": "json",
        "failure_count": sub.failure_count,
        "last_status": "failed" if sub.last_failure_at else None,
        "created_at": iso(sub.created_at),
        "updated_at": iso(sub.updated_at),
    }


def _data(body: Body, *, partial: bool) -> dict[str, Any]:
    body.only(*FIELDS)
    body.refuse(
        "secret",
        "This server generates the signing secret (Standard Webhooks); it is returned once on create.",
    )
    fmt = body.text("format", max_length=16)
    if fmt not in (None, "json"):
        body.errors["format"] = ["Only `json` is supported."]
    name = body.text("name", required=not partial, max_length=500)
    body.boolean("enabled")
    if not partial:
        for required in ("url", "events"):
            if required not in body.data:
                body.errors[required] = ["This field is required."]
    body.done()
    data = {k: body.data[k] for k in ("url", "enabled") if body.data.get(k) is not None}
    if name is not None:
        data["description"] = name
    if body.data.get("events") is not None:
        data["events"] = outgoing.events_to_spindle(body.data["events"])
    return validated(WebhookIn, data, partial=partial)


class WebhooksView(SpooledView):
    def get(self, request: Request) -> Response:
        self.require_unscoped()
        return Response(
            [
                webhook_shape(s)
                for s in selectors.webhook_list(workspace=self.workspace).order_by("-id")[:1000]
            ]
        )

    def post(self, request: Request) -> Response:
        self.require_unscoped()
        sub, secret = services.webhook_create(
            workspace=self.workspace, data=_data(self.body(request), partial=False)
        )
        return Response({**webhook_shape(sub), "secret": secret}, status=201)


class _OneWebhook(SpooledView):
    def subscription(self, webhook_id: str) -> WebhookSubscription:
        self.require_unscoped()
        return selectors.webhook_get(workspace=self.workspace, webhook_id=webhook_id)


class WebhookView(_OneWebhook):
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response(webhook_shape(self.subscription(webhook_id)))

    def put(self, request: Request, webhook_id: str) -> Response:
        sub = self.subscription(webhook_id)
        data = _data(self.body(request), partial=True)
        return Response(
            webhook_shape(services.webhook_update(workspace=self.workspace, subscription=sub, data=data))
        )

    def delete(self, request: Request, webhook_id: str) -> Response:
        services.webhook_delete(workspace=self.workspace, subscription=self.subscription(webhook_id))
        return Response(status=204)


class WebhookTestView(_OneWebhook):
    def post(self, request: Request, webhook_id: str) -> Response:
        return Response(outgoing.webhook_test(self.subscription(webhook_id)))


class WebhookDeliveriesView(_OneWebhook):
    def get(self, request: Request, webhook_id: str) -> Response:
        sub = self.subscription(webhook_id)
        rows = selectors.webhook_deliveries(workspace=self.workspace, subscription=sub).order_by("-id")
        if request.query_params.get("status"):
            rows = rows.filter(status=request.query_params["status"])
        return paged(request, rows, _delivery_shape)


def _delivery_shape(row: WebhookDelivery) -> dict[str, Any]:
    try:
        payload = json.loads(row.body)
    except ValueError:
        payload = row.body
    return {
        "id": row.id,
        "webhook_id": row.subscription_id,
        "event": outgoing.event_from_spindle(row.event_type),
        "payload": payload,
        "status": row.status,
        "status_code": row.response_status,
        "response_body": row.response_body or None,
        "error": row.error or None,
        "attempts": row.attempts,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.last_attempt_at) if row.status == "success" else None,
    }


class WebhookRetryView(_OneWebhook):
    def post(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        return Response(outgoing.delivery_retry(self.subscription(webhook_id), delivery_id))
