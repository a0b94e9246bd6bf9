"""Usage counters and Stripe events, and this month's usage on the workspace admin (accounts cannot import
the counter, so billing extends accounts' workspace admin with it; the plans' admin is in accounts)."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib import admin
from django.http import HttpRequest

from accounts import admin as accounts_admin
from accounts.models import Workspace

from .models import StripeEvent, UsageCounter
from .services import current_period


def _after(names: Sequence[str], anchor: str, name: str) -> tuple[str, ...]:
    at = list(names).index(anchor) + 1
    return (*names[:at], name, *names[at:])


class UsageCounterInline(admin.TabularInline):
    model = UsageCounter
    fields = ("period", "jobs_enqueued")
    readonly_fields = ("period", "jobs_enqueued")
    extra = 0
    can_delete = False
    ordering = ("-period",)
    max_num = 0  # read-only history


_Base = accounts_admin.WorkspaceAdmin
admin.site.unregister(Workspace)


@admin.register(Workspace)
class WorkspaceAdmin(_Base):
    list_display = _after(_Base.list_display, "is_anonymous", "jobs_this_month")
    readonly_fields = _after(_Base.readonly_fields, "id", "jobs_this_month")
    fieldsets = (_Base.fieldsets[0], ("Usage", {"fields": ("jobs_this_month",)}), *_Base.fieldsets[1:])
    inlines = (*_Base.inlines, UsageCounterInline)

    @admin.display(description="jobs this month")
    def jobs_this_month(self, obj: Workspace) -> str:
        counter = UsageCounter.objects.filter(workspace=obj, period=current_period()).first()
        used = counter.jobs_enqueued if counter else 0
        limit = obj.plan.jobs_per_month
        return f"{used:,} / {'unlimited' if limit is None else f'{limit:,}'}"


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
