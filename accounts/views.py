from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import error_responses
from config.exceptions import ValidationFailed

from . import services
from .serializers import RegisterAnonymousInSerializer, WorkspaceOutSerializer


def strict_body(request: Request, allowed: set[str]) -> dict:
    data = request.data if request.body else {}
    if not isinstance(data, dict):
        raise ValidationFailed(details={"non_field_errors": ["Expected a JSON object."]})
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed(details={k: ["Unknown field."] for k in unknown})
    return data


@extend_schema(
    tags=["Accounts"],
    auth=[],
    request=RegisterAnonymousInSerializer,
    responses={
        201: inline_serializer(
            "RegisterAnonymousOut", fields={"workspace": WorkspaceOutSerializer(), "api_key": serializers.CharField()}
        ),
        **error_responses(400, 415, 429),
    },
    description="Create a workspace without a user. The API key is shown once.",
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([])
def register_anonymous(request: Request) -> Response:
    data = strict_body(request, {"name"})
    serializer = RegisterAnonymousInSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    workspace, issued = services.workspace_create(
        name=serializer.validated_data.get("name") or "Anonymous workspace", is_anonymous=True
    )
    return Response(
        {"workspace": WorkspaceOutSerializer(workspace).data, "api_key": issued.raw}, status=status.HTTP_201_CREATED
    )
