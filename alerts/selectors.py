"""Reads for alerts, webhook subscriptions, deliveries and the event list: every query starts from the workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Workspace
from config.exceptions import first_or_404
from queues.models import Event

from .models import Alert, WebhookDelivery, WebhookSubscription


def alert_list(*, workspace: Workspace) -> QuerySet[Alert]:
    # Keyset on id newest first (index alerts_alert_ws).
    return Alert.objects.filter(workspace=workspace)


def alert_get(*, workspace: Workspace, alert_id: str) -> Alert:
    """The workspace's alert; another workspace's alert is a 404 like an unknown one."""
    return first_or_404(
        Alert.objects.filter(workspace=workspace, pk=alert_id), f"Alert '{alert_id}' not found."
    )


def webhook_list(*, workspace: Workspace) -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.filter(workspace=workspace)


def webhook_get(*, workspace: Workspace, webhook_id: str) -> WebhookSubscription:
    return first_or_404(
        WebhookSubscription.objects.filter(workspace=workspace, pk=webhook_id),
        f"Webhook '{webhook_id}' not found.",
    )


def webhook_deliveries(
    *, workspace: Workspace, subscription: WebhookSubscription
) -> QuerySet[WebhookDelivery]:
    # Index alerts_delivery_sub (subscription, -id).
    return WebhookDelivery.objects.filter(workspace=workspace, subscription=subscription)


def event_list(
    *, workspace: Workspace, queue_name: str | None = None, after: str | None = None
) -> QuerySet[Event]:
    """Events oldest first from `after` (exclusive); index jobs_event_ws or jobs_event_ws_queue."""
    qs = Event.objects.filter(workspace=workspace)
    if queue_name is not None:
        qs = qs.filter(queue_name=queue_name)
    if after:
        qs = qs.filter(id__gt=after)
    return qs
