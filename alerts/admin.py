"""Staff admin for alerts, webhook subscriptions and their outbound rows. Secrets are never shown."""

from __future__ import annotations

from django.contrib import admin

from .models import Alert, AlertNotification, WebhookDelivery, WebhookSubscription


def _hint(secret: str) -> str:
    # Enough to tell two secrets apart, never enough to sign with.
    return f"whsec_…{secret[-4:]}" if secret else "—"


class _SecretHidden(admin.ModelAdmin):
    """A workspace-owned row with a signing secret: the secret is excluded and only its hint is shown."""

    raw_id_fields = ("workspace",)
    exclude = ("secret",)

    @admin.display(description="Secret")
    def secret_hint(self, obj: Alert | WebhookSubscription) -> str:
        return _hint(obj.secret)


@admin.register(Alert)
class AlertAdmin(_SecretHidden):
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
    readonly_fields = ("id", "secret_hint", "firing", "last_fired_at", "created_at", "updated_at")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(_SecretHidden):
    list_display = ("id", "url", "workspace", "enabled", "failure_count", "last_failure_at")
    list_filter = ("enabled",)
    search_fields = ("id", "url", "workspace__id", "workspace__name")
    readonly_fields = ("id", "secret_hint", "failure_count", "last_failure_at", "created_at", "updated_at")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
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
class AlertNotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "alert", "kind", "status", "attempts", "next_attempt_at", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "alert__id")
    raw_id_fields = ("workspace", "alert")
