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
from config.idempotency import creates
from config.pagination import paginate
from queues.serializers import with_secret

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


def _list_schema(list_name: str, item: type[serializers.Serializer], description: str) -> Any:
    return extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={200: list_envelope(list_name, item), **error_responses(400, 401)},
        description=description,
    )


def _page(rows: QuerySet[Any], request: Request, render: Callable[[Any], dict[str, Any]]) -> Response:
    """One page of a list, newest first (keyset on id)."""
    return Response(paginate(rows, request.query_params, lambda page: [render(row) for row in page]))


@extend_schema(tags=["Alerts"])
class AlertViewSet(WorkspaceViewSet):
    """`/v1/alerts`: failure notifications by email, Slack or signed webhook."""

    @_list_schema("AlertList", AlertSchema, "The workspace's alerts, newest first.")
    def list(self, request: Request) -> Response:
        return _page(selectors.alert_list(workspace=self.workspace), request, alert_to_dict)

    @creates(
        AlertIn,
        AlertWithSecretSchema,
        errors=(400, 401, 402, 409, 415, 422),
        description="Create an alert. A webhook-channel alert's `secret` is returned once, here.",
    )
    def create(self, request: Request) -> Response:
        data = validated_body(request, AlertIn)
        alert, secret = services.alert_create(workspace=self.workspace, data=data)
        return Response(with_secret(alert_to_dict(alert), secret), status=status.HTTP_201_CREATED)

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

    @extend_schema(parameters=[_ALERT_ID], responses={204: None, **error_responses(401, 404)})
    def destroy(self, request: Request, alert_id: str) -> Response:
        alert = selectors.alert_get(workspace=self.workspace, alert_id=alert_id)
        services.alert_delete(workspace=self.workspace, alert=alert)
        return Response(status=status.HTTP_204_NO_CONTENT)

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

    @_list_schema("WebhookList", WebhookSchema, "The workspace's event subscriptions, newest first.")
    def list(self, request: Request) -> Response:
        return _page(selectors.webhook_list(workspace=self.workspace), request, webhook_to_dict)

    @creates(
        WebhookIn,
        WebhookWithSecretSchema,
        errors=(400, 401, 402, 409, 415, 422),
        description='Subscribe a URL to event types (or `["*"]`). The `secret` is returned once. '
        "Subscriptions per workspace are capped by the plan (402 `PLAN_LIMIT`).",
    )
    def create(self, request: Request) -> Response:
        data = validated_body(request, WebhookIn)
        sub, secret = services.webhook_create(workspace=self.workspace, data=data)
        return Response(with_secret(webhook_to_dict(sub), secret), status=status.HTTP_201_CREATED)

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

    @extend_schema(parameters=[_WEBHOOK_ID], responses={204: None, **error_responses(401, 404)})
    def destroy(self, request: Request, webhook_id: str) -> Response:
        sub = selectors.webhook_get(workspace=self.workspace, webhook_id=webhook_id)
        services.webhook_delete(workspace=self.workspace, subscription=sub)
        return Response(status=status.HTTP_204_NO_CONTENT)

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
