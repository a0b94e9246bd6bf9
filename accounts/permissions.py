from __future__ import annotations

from rest_framework.permissions import BasePermission


class HasWorkspace(BasePermission):
    """Every /v1 route but the public ones needs a workspace key or a user's JWT."""

    def has_permission(self, request, view) -> bool:
        return getattr(request.user, "workspace", None) is not None
