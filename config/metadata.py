"""OPTIONS answers: the route's methods and nothing else.

DRF's SimpleMetadata introspects the serializers and, for PUT, calls `get_object()` (a 500 on our viewsets, which
have no queryset). An OPTIONS answer here is `{"methods": [...]}` with the `Allow` header DRF sets: no field
descriptions, no object lookups, so it reveals nothing about the workspace's data. OPTIONS goes through the same
authentication and permission checks as any other method (without a key: 401 in the error envelope); public routes
(register, login, refresh, health) answer it without a key.
"""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import BaseMetadata
from rest_framework.request import Request


class MethodsMetadata(BaseMetadata):
    def determine_metadata(self, request: Request, view: Any) -> dict[str, Any]:
        return {"methods": list(view.allowed_methods)}
