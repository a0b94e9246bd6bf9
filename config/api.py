"""Shared API plumbing: the workspace-scoped base viewset and the envelope schema component."""

from __future__ import annotations

from typing import Any

from drf_spectacular.drainage import set_override
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions, negotiation, serializers, viewsets
from rest_framework.request import Request

from accounts.models import Workspace
from config.exceptions import ValidationFailed


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="UPPER_SNAKE error code, e.g. VALIDATION_ERROR")
    message = serializers.CharField()
    details = serializers.DictField(help_text="For VALIDATION_ERROR: field -> list of messages")


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """`@extend_schema(responses={..., **error_responses(400, 404)})`."""
    return {s: OpenApiResponse(response=ErrorEnvelopeSerializer, description="Error envelope") for s in statuses}


def list_envelope(name: str, item: Any) -> Any:
    """The list envelope `{data, next_cursor}` (API.md Conventions): one object, which drf-spectacular would wrap
    in an array on a `list` action unless told the response is not `many`."""
    envelope = inline_serializer(
        name=name,
        fields={"data": item(many=True), "next_cursor": serializers.CharField(allow_null=True)},
    )
    set_override(envelope, "many", False)
    return envelope


class LenientContentNegotiation(negotiation.DefaultContentNegotiation):
    """For documents that exist in one format only (the OpenAPI schema): an Accept header that matches none of the
    renderers gets the first one instead of a 406 (API.md: `/openapi.json` answers `Accept: application/json`)."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


class WorkspaceViewSet(viewsets.GenericViewSet):
    """Resolves the acting workspace once; every query in a subclass starts from `self.workspace`."""

    lookup_value_regex = r"[^/]+"

    @property
    def workspace(self) -> Workspace:
        return self.request.user.workspace

    def strict_data(self, request: Request, allowed: set[str] | frozenset[str]) -> dict[str, Any]:
        """The JSON object body, refusing unknown fields (API.md: requests are strict)."""
        data = request.data
        if data is None or data == {} and not request.body:
            return {}
        if not isinstance(data, dict):
            raise ValidationFailed("The body must be a JSON object.", details={"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValidationFailed(details={k: ["Unknown field."] for k in unknown})
        return data
