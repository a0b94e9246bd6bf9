"""Staff admin for queues. Signing secrets are never shown: the form excludes them, the list shows a hint.

Edits go through the API's validation (QueueAdminForm runs QueueIn), and what the API cannot change after
create (name, delivery mode, the pause state kept by pause/resume) is read-only. Endpoint header values show
masked, as in API reads."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .admin_forms import QueueAdminForm, secret_hint
from .models import Queue
from .services import signing_secret_new

# Set at create only, or only through the pause/resume services (which also write the event stream).
FIXED_AFTER_CREATE = ("name", "delivery")
READ_ONLY = (
    "id",
    "paused",
    "paused_job_names",
    "secret_hint",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    form = QueueAdminForm
    list_display = (
        "name",
        "workspace",
        "delivery",
        "paused",
        "concurrency",
        "lease_ms",
        "secret_hint",
        "created_at",
    )
    list_filter = ("delivery", "paused", "created_at")
    search_fields = ("name", "id", "workspace__name", "workspace__id")
    list_select_related = ("workspace",)
    raw_id_fields = ("workspace",)
    exclude = ("signing_secret", "previous_signing_secret")
    ordering = ("-created_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Queue | None = None) -> tuple[str, ...]:
        if obj is None:
            return READ_ONLY
        return ("workspace", *FIXED_AFTER_CREATE, *READ_ONLY)

    def save_model(self, request: HttpRequest, obj: Queue, form: Any, change: bool) -> None:
        if not obj.signing_secret:
            obj.signing_secret = signing_secret_new()  # as the API's create; rotate it through the API
        super().save_model(request, obj, form, change)

    @admin.display(description="Signing secret")
    def secret_hint(self, obj: Queue) -> str:
        return secret_hint(obj.signing_secret)
