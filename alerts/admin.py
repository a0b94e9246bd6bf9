"""Staff admin for alerts, webhook subscriptions and their outbound rows. Secrets are never shown.

Alerts and subscriptions are created through the API (their secret is shown once there, and the plan caps
them); an edit is checked by the API's input serializers (AlertIn, WebhookIn) and an alert's by its target
rule, and an alert is saved through its PATCH service. Deliveries and notifications are the sender's rows:
read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from queues.admin_forms import ApiValidatedForm, ViewOnlyAdmin, secret_hint

from .models import Alert, AlertNotification, WebhookDelivery, WebhookSubscription
from .serializers import AlertIn, WebhookIn, alert_target_check
from .services import alert_update


class AlertAdminForm(ApiValidatedForm):
    serializer_class = AlertIn
    api_names = {
        "name": "name",
        "channel": "channel",
        "target": "target",
        "queue_name": "queue",
        "schedule_name": "schedule",
        "consecutive_failures_threshold": "consecutive_failures_threshold",
        "cooldown_minutes": "cooldown_minutes",
        "enabled": "enabled",
    }

    def check_rules(self, cleaned: dict[str, Any]) -> None:
        if "target" in cleaned:
            channel = cleaned.get("channel", self.instance.channel)
            cleaned["target"] = alert_target_check(channel=channel, target=cleaned["target"])


class WebhookAdminForm(ApiValidatedForm):
    serializer_class = WebhookIn
    api_names = {name: name for name in ("url", "events", "enabled", "description")}


class _SecretHidden(admin.ModelAdmin):
    """A workspace-owned row with a signing secret: the secret is excluded and only its hint is shown."""

    raw_id_fields = ("workspace",)
    exclude = ("secret",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # through the API, which shows the new secret once and holds the plan's cap

    @admin.display(description="Secret")
    def secret_hint(self, obj: Alert | WebhookSubscription) -> str:
        return secret_hint(obj.secret)


@admin.register(Alert)
class AlertAdmin(_SecretHidden):
    form = AlertAdminForm
    list_display = (
        "id",
        "name",
        "workspace",
        "channel",
        "queue_name",
        "schedule_name",
        "enabled",
        "firing",
        "last_fired_at",
    )
    list_filter = ("channel", "enabled", "firing")
    search_fields = ("id", "name", "workspace__id", "workspace__name")
    # The channel is fixed: moving to the webhook channel makes a secret, which only the API can show.
    readonly_fields = (
        "id",
        "workspace",
        "channel",
        "secret_hint",
        "firing",
        "last_fired_at",
        "created_at",
        "updated_at",
    )

    def save_model(self, request: HttpRequest, obj: Alert, form: Any, change: bool) -> None:
        # The PATCH service also clears `firing` when the scope or threshold changes, or the alert is disabled.
        current = Alert.objects.select_related("workspace").get(pk=obj.pk)
        alert_update(workspace=current.workspace, alert=current, data=form.api_changes(), replace=False)


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(_SecretHidden):
    form = WebhookAdminForm
    list_display = ("id", "url", "workspace", "enabled", "failure_count", "last_failure_at")
    list_filter = ("enabled",)
    search_fields = ("id", "url", "workspace__id", "workspace__name")
    readonly_fields = (
        "id",
        "workspace",
        "secret_hint",
        "failure_count",
        "last_failure_at",
        "created_at",
        "updated_at",
    )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyAdmin):
    list_display = (
        "id",
        "subscription",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "response_status",
    )
    list_filter = ("status", "event_type")
    search_fields = ("id", "event_id", "subscription__id")
    raw_id_fields = ("workspace", "subscription")
    show_full_result_count = False


@admin.register(AlertNotification)
class AlertNotificationAdmin(ViewOnlyAdmin):
    list_display = ("id", "alert", "kind", "status", "attempts", "next_attempt_at", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "alert__id")
    raw_id_fields = ("workspace", "alert")
