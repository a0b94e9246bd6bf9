"""Model fields that every resource table declares the same way.

Each returns a new field, as writing it out would: migrations see the same field (its `deconstruct()` is
unchanged), so using these changes no schema.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import models


def prefixed_id(default: Callable[[], str]) -> models.CharField:
    """The primary key: a prefixed, time-ordered id (config.ids.new_id) made by `default`."""
    return models.CharField(primary_key=True, max_length=40, default=default, editable=False)


def owning_workspace() -> models.ForeignKey:
    """The tenant. Not indexed alone: every table's indexes start with it where its queries need one."""
    return models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False)


def timestamps() -> tuple[models.DateTimeField, models.DateTimeField]:
    """`created_at, updated_at = timestamps()`: set on insert, and on every save."""
    return models.DateTimeField(auto_now_add=True), models.DateTimeField(auto_now=True)


def workspace_list_index(name: str) -> models.Index:
    """The index of an API list: the workspace's rows newest first (keyset on the time-ordered id)."""
    return models.Index(fields=["workspace", "-id"], name=name)
