"""Staff see each workspace's plan, usage, subscription and keys; they change plans and revoke keys.

Key hashes are never shown: the inline and the key admin list only the visible prefix.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import UsageCounter
from billing.services import current_period

from .models import ApiKey, Workspace
from .services import api_keys_revoke

KEY_FIELDS = ("name", "prefix", "is_primary", "created_at", "last_used_at", "revoked_at")


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = KEY_FIELDS
    readonly_fields = KEY_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Workspace | None = None) -> bool:
        return False  # a key is shown once at creation: issue keys through the API or `issue_key`


class UsageCounterInline(admin.TabularInline):
    model = UsageCounter
    fields = ("period", "jobs_enqueued")
    readonly_fields = ("period", "jobs_enqueued")
    extra = 0
    can_delete = False
    ordering = ("-period",)
    max_num = 0  # read-only history


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "plan",
        "owner",
        "is_anonymous",
        "jobs_this_month",
        "subscription_status",
        "created_at",
    )
    list_filter = ("plan", "is_anonymous", "subscription_status")
    search_fields = ("id", "name", "owner__email", "stripe_customer_id", "stripe_subscription_id")
    list_select_related = ("plan", "owner")
    raw_id_fields = ("owner",)
    readonly_fields = (
        "id",
        "jobs_this_month",
        "stripe_customer_id",
        "stripe_subscription_id",
        "subscription_status",
        "billing_synced_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "name", "owner", "is_anonymous", "plan")}),
        ("Usage", {"fields": ("jobs_this_month",)}),
        (
            "Subscription",
            {
                "fields": (
                    "stripe_customer_id",
                    "stripe_subscription_id",
                    "subscription_status",
                    "billing_synced_at",
                )
            },
        ),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (ApiKeyInline, UsageCounterInline)
    actions = ("revoke_all_keys",)

    @admin.display(description="jobs this month")
    def jobs_this_month(self, obj: Workspace) -> str:
        counter = UsageCounter.objects.filter(workspace=obj, period=current_period()).first()
        used = counter.jobs_enqueued if counter else 0
        limit = obj.plan.jobs_per_month
        return f"{used:,} / {'unlimited' if limit is None else f'{limit:,}'}"

    @admin.action(description="Revoke every key of the selected workspaces")
    def revoke_all_keys(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        ids = list(ApiKey.objects.filter(workspace__in=queryset).values_list("id", flat=True))
        count = api_keys_revoke(key_ids=ids)
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "workspace", *KEY_FIELDS)
    list_filter = ("is_primary",)
    search_fields = ("id", "prefix", "workspace__id", "workspace__name")
    list_select_related = ("workspace",)
    fields = ("id", "workspace", *KEY_FIELDS)
    readonly_fields = ("id", "workspace", *KEY_FIELDS)
    actions = ("revoke_keys",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = api_keys_revoke(key_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
