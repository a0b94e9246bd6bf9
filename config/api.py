"""Shared API plumbing: the workspace-scoped base viewset and the envelope schema component."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.drainage import set_override
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import exceptions, negotiation, serializers, viewsets
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import ValidationFailed
from config.renderers import JSONRenderer

BODY_NOT_OBJECT = "The body must be a JSON object."


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="UPPER_SNAKE error code, e.g. VALIDATION_ERROR")
    message = serializers.CharField()
    details = serializers.DictField(help_text="For VALIDATION_ERROR: field -> list of messages")


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """`@extend_schema(responses={..., **error_responses(400, 404)})`."""
    return {
        s: OpenApiResponse(response=ErrorEnvelopeSerializer, description="Error envelope") for s in statuses
    }


def list_envelope(name: str, item: Any) -> Any:
    """The list envelope `{data, next_cursor}` (API.md Conventions): one object, which drf-spectacular would wrap
    in an array on a `list` action unless told the response is not `many`."""
    envelope = inline_serializer(
        name=name,
        fields={"data": item(many=True), "next_cursor": serializers.CharField(allow_null=True)},
    )
    set_override(envelope, "many", False)
    return envelope


# The query parameters of a list in that envelope, as config.pagination reads them.
PAGE_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="1..1000, default 50"),
    OpenApiParameter("cursor", OpenApiTypes.STR),
]

DETAIL_ACTIONS = {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}


def resource_routes(
    viewset: Any,
    collection: str,
    lookup: str,
    name: str,
    *,
    detail: Collection[str] = ("get", "put", "patch", "delete"),
    **actions: Collection[str],
) -> list[URLPattern]:
    """A viewset's routes: `collection` (list, create; `<name>-list`), `collection/lookup` with the `detail`
    HTTP methods (retrieve, update, partial_update, destroy; `<name>-detail`), and each extra action under it
    with its methods (`…/lookup/test`, named `<name>-test`)."""
    item = f"{collection}/{lookup}"
    routes = [
        path(collection, viewset.as_view({"get": "list", "post": "create"}), name=f"{name}-list"),
        path(item, viewset.as_view({m: DETAIL_ACTIONS[m] for m in detail}), name=f"{name}-detail"),
    ]
    for action, methods in actions.items():
        view = viewset.as_view(dict.fromkeys(methods, action))
        routes.append(path(f"{item}/{action}", view, name=f"{name}-{action}"))
    return routes


class LenientContentNegotiation(negotiation.DefaultContentNegotiation):
    """For documents that exist in one format only (the OpenAPI schema): an Accept header that matches none of the
    renderers gets the first one instead of a 406 (API.md: `/openapi.json` answers `Accept: application/json`)."""

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> Any:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


class WorkspaceViewSet(viewsets.GenericViewSet):
    """Resolves the acting workspace once; every query in a subclass starts from `self.workspace`.

    A subclass whose routes share one OpenAPI tag declares it once, on the class (`@extend_schema(tags=[...])`):
    drf-spectacular gives it to every route that does not name its own."""

    lookup_value_regex = r"[^/]+"

    @property
    def workspace(self) -> Any:
        """The acting accounts.Workspace; typed loosely because config sits below the apps and cannot name it."""
        return self.request.user.workspace

    def strict_data(self, request: Request, allowed: Collection[str]) -> dict[str, Any]:
        """The JSON object body, refusing unknown fields (API.md: requests are strict)."""
        return strict_body(request, allowed)


def strict_body(
    request: Request,
    allowed: Collection[str],
    *,
    null_is_empty: bool = True,
    message: str | None = BODY_NOT_OBJECT,
) -> dict[str, Any]:
    """The JSON object body (no body: `{}`), refusing keys outside `allowed` as "Unknown field." (API.md:
    requests are strict). The account routes pass `null_is_empty=False, message=None`: they answer a `null`
    body 400 too, under the default message."""
    data = request.data
    if data is None and null_is_empty or data == {} and not request.body:
        return {}
    if not isinstance(data, dict):
        raise ValidationFailed(message, details={"non_field_errors": ["Expected a JSON object."]})
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed(details={k: ["Unknown field."] for k in unknown})
    return data


def body_fields(serializer_class: type[serializers.Serializer]) -> set[str]:
    """The keys a strict body may carry for an input serializer: its fields, plus the ones it names read-only
    (`read_only_names`), so that the serializer answers "This field is read-only." not "Unknown field."."""
    return set(serializer_class._declared_fields) | set(getattr(serializer_class, "read_only_names", ()))


def validated(
    serializer_class: type[serializers.Serializer], data: Any, *, partial: bool = False, flat: bool = False
) -> dict[str, Any]:
    """`data` checked by an input serializer -> its validated data, else 400 VALIDATION_ERROR. Without `flat`,
    DRF's ValidationError goes to the API's exception handler; with it (the dashboard's forms, shown as one
    flash message) a ValidationFailed carries one list of strings per field, nested errors included."""
    serializer = serializer_class(data=data, partial=partial)
    if flat and not serializer.is_valid():
        errors = serializer.errors.items()
        details = {k: [str(m) for m in v] if isinstance(v, list) else [str(v)] for k, v in errors}
        raise ValidationFailed(details=details)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def validated_body(
    request: Request,
    serializer_class: type[serializers.Serializer],
    *,
    partial: bool = False,
    **strictness: Any,
) -> dict[str, Any]:
    """The strict body of a route that takes one, checked by its input serializer: `strict_body` with the keys
    `body_fields` allows (`strictness` goes to it), then `validated`."""
    body = strict_body(request, body_fields(serializer_class), **strictness)
    return validated(serializer_class, body, partial=partial)


def public_post(view: Callable[..., Any]) -> Any:
    """A POST route that takes no credentials (no authentication, no permission): register, login, refresh and
    the Stripe webhook, each guarded by its own rate limit or signature check."""
    return api_view(["POST"])(authentication_classes([])(permission_classes([])(view)))


def render_json(data: Any) -> bytes:
    """`data` as the API's JSONRenderer writes a response for a plain `Accept: application/json` (or none)."""
    return JSONRenderer().render(data)


class PrerenderedResponse(Response):
    """A Response whose body was rendered ahead by `render_json` (a batch enqueue renders it while PostgreSQL
    writes the rows). DRF renders it again only if the client negotiated something else (`indent=`, say)."""

    def __init__(self, data: Any, body: bytes, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.prerendered = body

    @property
    def rendered_content(self) -> bytes:
        renderer = getattr(self, "accepted_renderer", None)
        media_type = getattr(self, "accepted_media_type", "")
        if type(renderer) is JSONRenderer and media_type == renderer.media_type and self.content_type is None:
            self["Content-Type"] = renderer.media_type
            return self.prerendered
        return super().rendered_content
