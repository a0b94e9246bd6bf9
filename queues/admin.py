"""Staff admin for queues. Signing secrets are never shown: the form excludes them, the list shows a hint."""

from __future__ import annotations

from django.contrib import admin

from .models import Queue


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "delivery", "paused", "concurrency", "lease_ms", "secret_hint", "created_at")
    list_filter = ("delivery", "paused", "created_at")
    search_fields = ("name", "id", "workspace__name", "workspace__id")
    list_select_related = ("workspace",)
    raw_id_fields = ("workspace",)
    exclude = ("signing_secret", "previous_signing_secret")
    readonly_fields = ("id", "secret_hint", "previous_secret_expires_at", "created_at", "updated_at")
    ordering = ("-created_at",)

    @admin.display(description="Signing secret")
    def secret_hint(self, obj: Queue) -> str:
        # Enough to tell two secrets apart when a customer asks, never enough to sign with.
        return f"whsec_…{obj.signing_secret[-4:]}" if obj.signing_secret else "—"
