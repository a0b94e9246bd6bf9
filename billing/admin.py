from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Plan, StripeEvent, UsageCounter


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "requests_per_minute",
        "jobs_per_month",
        "retention_days",
        "max_queues",
        "max_schedules",
        "max_alerts",
        "max_webhooks",
        "max_attempts",
        "max_timeout_ms",
        "stripe_price_id",
    )
    ordering = ("sort_order",)


@admin.register(UsageCounter)
class UsageCounterAdmin(admin.ModelAdmin):
    list_display = ("workspace", "period", "jobs_enqueued")
    list_filter = ("period",)
    search_fields = ("workspace__id", "workspace__name")
    list_select_related = ("workspace",)
    raw_id_fields = ("workspace",)
    readonly_fields = ("workspace", "period")


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "type", "workspace_id", "received_at")
    search_fields = ("event_id", "workspace_id")
    list_filter = ("type",)
    readonly_fields = ("event_id", "type", "workspace_id", "received_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
