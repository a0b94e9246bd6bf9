"""Reads for accounts."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import ApiKey, Workspace


def api_keys_active(*, workspace: Workspace) -> QuerySet[ApiKey]:
    """The workspace's keys that still authenticate (served by accounts_key_ws_created)."""
    return ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True)


def api_key_primary_prefix(*, workspace: Workspace) -> str | None:
    return (
        api_keys_active(workspace=workspace)
        .filter(is_primary=True)
        .order_by("-created_at")
        .values_list("prefix", flat=True)
        .first()
    )
