"""Alert and webhook-subscription routes (thin: validate, call a service or selector, render)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import PAGE_PARAMETERS, WorkspaceViewSet, error_responses, list_envelope, validated_body
from config.pagination import paginate
from queues.serializers import with_secret
from queues.views import secret_creating

from . import selectors, services
from .serializers import (
    AlertIn,
    AlertSchema,
    AlertTestSchema,
    AlertWithSecretSchema,
    DeliverySchema,
    WebhookIn,
    WebhookSchema,
    WebhookWithSecretSchema,
    alert_to_dict,
    delivery_to_dict,
    webhook_to_dict,
)

_ALERT_ID = OpenApiParameter("alert_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="alr_…")
_WEBHOOK_ID = OpenApiParameter("webhook_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="wh_…")


def _listing(
    list_name: str,
    item: type[serializers.Serializer],
    rows: Callable[..., QuerySet[Any]],
    render: Callable[[Any], dict[str, Any]],
    description: str,
) -> Callable[..., Response]:
    """The `list` action of a workspace's resources: `rows(workspace=)` a page at a time, each `render`ed."""

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={200: list_envelope(list_name, item), **error_responses(400, 401)},
        description=description,
    )
    def list_(view: WorkspaceViewSet, request: Request) -> Response:
        return _page(rows(workspace=view.workspace), request, render)

    return list_


def _page(rows: QuerySet[Any], request: Request, render: Callable[[Any], dict[str, Any]]) -> Response:
    """One page of a list, newest first (keyset on id)."""
    return Response(paginate(rows, request.query_params, lambda page: [render(row) for row in page]))


def _destroying(
    param: OpenApiParameter, get: Callable[..., Any], delete: Callable[..., None], row_name: str
) -> Callable[..., Response]:
    """The `destroy` action: `get(workspace=, <path id>=)` the workspace's row (else 404), `delete(workspace=,
    <row_name>=row)` it, answer 204."""

    @extend_schema(parameters=[param], responses={204: None, **error_responses(401, 404)})
    def destroy(view: WorkspaceViewSet, request: Request, **path: str) -> Response:
        row = get(workspace=view.workspace, **path)
        delete(workspace=view.workspace, **{row_name: row})
        return Response(status=status.HTTP_204_NO_CONTENT)

    return destroy


@extend_schema(tags=["Alerts"])
class AlertViewSet(WorkspaceViewSet):
    """`/v1/alerts`: failure notifications by email, Slack or signed webhook."""

    list = _listing(
        "AlertList", AlertSchema, selectors.alert_list, alert_to_dict, "The workspace's alerts, newest first."
    )

    create = secret_creating(
        AlertIn,
        AlertWithSecretSchema,
        services.alert_create,
        alert_to_dict,
        description="Create an alert. A webhook-channel alert's `secret` is returned once, here.",
    )

    @extend_schema(parameters=[_ALERT_ID], responses={200: AlertSchema, **error_responses(401, 404)})
    def retrieve(self, request: Request, alert_id: str) -> Response:
        return Response(alert_to_dict(selectors.alert_get(workspace=self.workspace, alert_id=alert_id)))

    def _update(self, request: Request, alert_id: str, *, replace: bool) -> Response:
        alert = selectors.alert_get(workspace=self.workspace, alert_id=alert_id)
        data = validated_body(request, AlertIn, partial=not replace)
        alert, secret = services.alert_update(
            workspace=self.workspace, alert=alert, data=data, replace=replace
        )
        return Response(with_secret(alert_to_dict(alert), secret))

    @extend_schema(
        parameters=[_ALERT_ID],
        request=AlertIn,
        responses={200: AlertWithSecretSchema, **error_responses(400, 401, 404, 415)},
        description="Replace the alert; omitted optional fields go back to their defaults. Switching to "
        "the webhook channel returns a new `secret` once.",
    )
    def update(self, request: Request, alert_id: str) -> Response:
        return self._update(request, alert_id, replace=True)

    @extend_schema(
        parameters=[_ALERT_ID],
        request=AlertIn(partial=True),
        responses={200: AlertWithSecretSchema, **error_responses(400, 401, 404, 415)},
        description="Change some fields. Switching to the webhook channel returns a new `secret` once.",
    )
    def partial_update(self, request: Request, alert_id: str) -> Response:
        return self._update(request, alert_id, replace=False)

    destroy = _destroying(_ALERT_ID, selectors.alert_get, services.alert_delete, "alert")

    @extend_schema(
        parameters=[_ALERT_ID],
        request=None,
        responses={202: AlertTestSchema, **error_responses(400, 401, 404)},
        description="Queue a test message to the alert's channel and answer at once with 202 "
        '`{"sent": true}`: it goes out within about a second, off the request, with one '
        "attempt and no retry (so a slow target cannot hold the request).",
    )
    def test(self, request: Request, alert_id: str) -> Response:
        alert = selectors.alert_get(workspace=self.workspace, alert_id=alert_id)
        self.strict_data(request, set())
        services.alert_test(workspace=self.workspace, alert=alert)
        return Response({"sent": True}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["Webhooks"])
class WebhookViewSet(WorkspaceViewSet):
    """`/v1/webhooks`: event subscriptions, delivered signed (Standard Webhooks) with retries."""

    list = _listing(
        "WebhookList",
        WebhookSchema,
        selectors.webhook_list,
        webhook_to_dict,
        "The workspace's event subscriptions, newest first.",
    )

    create = secret_creating(
        WebhookIn,
        WebhookWithSecretSchema,
        services.webhook_create,
        webhook_to_dict,
        description='Subscribe a URL to event types (or `["*"]`). The `secret` is returned once. '
        "Subscriptions per workspace are capped by the plan (402 `PLAN_LIMIT`).",
    )

    @extend_schema(
        parameters=[_WEBHOOK_ID],
        responses={200: WebhookSchema, **error_responses(401, 404)},
    )
    def retrieve(self, request: Request, webhook_id: str) -> Response:
        return Response(
            webhook_to_dict(selectors.webhook_get(workspace=self.workspace, webhook_id=webhook_id))
        )

    @extend_schema(
        parameters=[_WEBHOOK_ID],
        request=WebhookIn(partial=True),
        responses={200: WebhookSchema, **error_responses(400, 401, 404, 415)},
    )
    def partial_update(self, request: Request, webhook_id: str) -> Response:
        sub = selectors.webhook_get(workspace=self.workspace, webhook_id=webhook_id)
        data = validated_body(request, WebhookIn, partial=True)
        sub = services.webhook_update(workspace=self.workspace, subscription=sub, data=data)
        return Response(webhook_to_dict(sub))

    destroy = _destroying(_WEBHOOK_ID, selectors.webhook_get, services.webhook_delete, "subscription")

    @extend_schema(
        parameters=[_WEBHOOK_ID, *PAGE_PARAMETERS],
        responses={
            200: list_envelope("WebhookDeliveryList", DeliverySchema),
            **error_responses(400, 401, 404),
        },
        description="Deliveries of this subscription, newest first, with their retry state.",
    )
    def deliveries(self, request: Request, webhook_id: str) -> Response:
        sub = selectors.webhook_get(workspace=self.workspace, webhook_id=webhook_id)
        return _page(
            selectors.webhook_deliveries(workspace=self.workspace, subscription=sub),
            request,
            delivery_to_dict,
        )
