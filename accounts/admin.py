"""Staff see each workspace's plan, subscription and keys, and the plans; they change plans and revoke keys.

Key hashes are never shown: the inline and the key admin list only the visible prefix. Billing's admin adds
the workspace's usage (the counter is billing's: accounts does not import it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import ApiKey, Plan, Workspace
from .services import api_keys_revoke, workspace_set_plan

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


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    # Every column but the sort key, in declaration order (code, name, the caps, the Stripe price).
    list_display = tuple(f.name for f in Plan._meta.fields if f.name != "sort_order")
    ordering = ("sort_order",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "plan",
        "owner",
        "is_anonymous",
        "subscription_status",
        "created_at",
    )
    list_filter = ("plan", "is_anonymous", "subscription_status")
    search_fields = ("id", "name", "owner__email", "stripe_customer_id", "stripe_subscription_id")
    list_select_related = ("plan", "owner")
    raw_id_fields = ("owner",)
    readonly_fields = (
        "id",
        "stripe_customer_id",
        "stripe_subscription_id",
        "subscription_status",
        "billing_synced_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "name", "owner", "is_anonymous", "plan")}),
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
    inlines = (ApiKeyInline,)
    actions = ("revoke_all_keys",)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """One "Change plan to X" action per plan in the table (plans are data, staff can add some)."""
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            return actions
        for code, name in Plan.objects.order_by("code").values_list("code", "name"):
            action_name = f"change_plan_to_{code}"
            actions[action_name] = (_change_plan_action(code), action_name, f"Change plan to {name} ({code})")
        return actions

    def save_model(self, request: HttpRequest, obj: Workspace, form: Any, change: bool) -> None:
        # A plan picked in the form goes through the same service as the actions.
        if change and "plan" in form.changed_data:
            plan_code = obj.plan_id
            obj.plan_id = form.initial.get("plan")
            super().save_model(request, obj, form, change)
            workspace_set_plan(workspace=obj, plan_code=plan_code)
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke every key of the selected workspaces")
    def revoke_all_keys(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        ids = list(ApiKey.objects.filter(workspace__in=queryset).values_list("id", flat=True))
        count = api_keys_revoke(key_ids=ids)
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


def _change_plan_action(plan_code: str) -> Callable[[Any, HttpRequest, QuerySet[Workspace]], None]:
    def change_plan(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        changed = 0
        for workspace in queryset.select_related("plan"):
            if workspace.plan_id != plan_code:
                workspace_set_plan(workspace=workspace, plan_code=plan_code)
                changed += 1
        modeladmin.message_user(
            request, f"Moved {changed} workspace(s) to the {plan_code} plan.", messages.SUCCESS
        )

    return change_plan


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
