"""Reads for alerts, webhook subscriptions and their deliveries: every query starts from the workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Workspace
from config.exceptions import first_or_404

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
