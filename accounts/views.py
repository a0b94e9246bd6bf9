from __future__ import annotations

import functools
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import WorkspaceViewSet, error_responses, list_envelope, public_post
from config.api import strict_body as config_strict_body
from config.api import validated_body as config_validated_body
from config.idempotency import creates
from config.pagination import paginate
from config.ratelimit import login_rate_check, register_rate_check

from . import selectors, services
from .serializers import (
    ApiKeyCreatedOutSerializer,
    ApiKeyInSerializer,
    ApiKeyOutSerializer,
    LoginInSerializer,
    PlanOutSerializer,
    RefreshInSerializer,
    RegisterAnonymousInSerializer,
    RegisterInSerializer,
    TokensOutSerializer,
    UserOutSerializer,
    WorkspaceOutSerializer,
)

# API.md Conventions: Idempotency-Key is scoped by workspace; these routes run before there is one.
_NO_IDEMPOTENCY_KEY = (
    "The Idempotency-Key header is not honoured here: the route is unauthenticated, so there is no workspace "
    "to scope a key by (a shared scope would let one client replay another's new key)."
)


# Account routes (and billing's, which import this) answer a `null` body 400 too, under the default message.
_STRICTNESS: dict[str, Any] = {"null_is_empty": False, "message": None}
strict_body = functools.partial(config_strict_body, **_STRICTNESS)
validated_body = functools.partial(config_validated_body, **_STRICTNESS)
# The routes that take no credentials document that they need none.
_public_schema = functools.partial(extend_schema, tags=["Accounts"], auth=[])


@_public_schema(
    request=RegisterAnonymousInSerializer,
    responses={
        201: inline_serializer(
            "RegisterAnonymousOut",
            fields={"workspace": WorkspaceOutSerializer(), "api_key": serializers.CharField()},
        ),
        **error_responses(400, 415, 429),
    },
    description="Create a workspace without a user. The API key is shown once. "
    "Shares the per-address SPINDLE_REGISTER_RATE budget with register. " + _NO_IDEMPOTENCY_KEY,
)
@public_post
def register_anonymous(request: Request) -> Response:
    register_rate_check(request)
    data = validated_body(request, RegisterAnonymousInSerializer)
    workspace, issued = services.workspace_create(
        name=data.get("name") or "Anonymous workspace", is_anonymous=True
    )
    return Response(
        {"workspace": WorkspaceOutSerializer(workspace).data, "api_key": issued.raw},
        status=status.HTTP_201_CREATED,
    )


@_public_schema(
    request=RegisterInSerializer,
    responses={
        201: inline_serializer(
            "RegisterOut",
            fields={
                "user": UserOutSerializer(),
                "workspace": WorkspaceOutSerializer(),
                "tokens": TokensOutSerializer(),
                "api_key": serializers.CharField(help_text="The workspace's primary key, shown once"),
            },
        ),
        **error_responses(400, 409, 415, 429),
    },
    description="Create a user with a workspace on the free plan. 409 CONFLICT if the email is registered. "
    "Limited per client address (SPINDLE_REGISTER_RATE, shared with register-anonymous). "
    + _NO_IDEMPOTENCY_KEY,
)
@public_post
def register(request: Request) -> Response:
    register_rate_check(request)
    data = validated_body(request, RegisterInSerializer)
    result = services.user_register(email=data["email"], password=data["password"], name=data["name"])
    body = {
        "user": UserOutSerializer(result.user).data,
        "workspace": WorkspaceOutSerializer(result.workspace).data,
        "tokens": result.tokens.as_dict(),
        "api_key": result.key.raw,
    }
    return Response(body, status=status.HTTP_201_CREATED)


@_public_schema(
    request=LoginInSerializer,
    responses={
        200: inline_serializer(
            "LoginOut",
            fields={
                "user": UserOutSerializer(
                    allow_null=True,
                    help_text="The user; with `api_key`, the workspace's owner or null (anonymous)",
                ),
                "workspace": WorkspaceOutSerializer(
                    required=False, help_text="With `api_key` only: the workspace the tokens act on"
                ),
                "tokens": TokensOutSerializer(),
            },
        ),
        **error_responses(400, 401, 415, 429),
    },
    description='Exchange email and password, or a workspace API key (`{"api_key": "rt_ws_…"}`), for JWTs '
    "(access 15 min, refresh 30 days). A key's tokens act on that key's workspace (an anonymous workspace has no "
    "user: they carry the key and workspace ids, no user) and only while the key is active: revoking or rotating "
    "the key ends them. Wrong credentials or an unknown or revoked key: 401. Every attempt counts against "
    "SPINDLE_LOGIN_RATE per client address.",
)
@public_post
def login(request: Request) -> Response:
    login_rate_check(request)
    data = validated_body(request, LoginInSerializer)
    if "api_key" in data:
        key, tokens = services.api_key_login(raw_key=data["api_key"])
        workspace = key.workspace
        owner = workspace.owner
        return Response(
            {
                "user": UserOutSerializer(owner).data if owner is not None else None,
                "workspace": WorkspaceOutSerializer(workspace).data,
                "tokens": tokens.as_dict(),
            }
        )
    user, tokens = services.user_login(email=data["email"], password=data["password"])
    return Response({"user": UserOutSerializer(user).data, "tokens": tokens.as_dict()})


@_public_schema(
    request=RefreshInSerializer,
    responses={200: TokensOutSerializer, **error_responses(400, 401, 415)},
    description="Rotate a refresh token: answers a new pair; the refresh token sent is then refused (401).",
)
@public_post
def refresh(request: Request) -> Response:
    data = validated_body(request, RefreshInSerializer)
    return Response(services.tokens_refresh(refresh=data["refresh"]).as_dict())


@extend_schema(
    tags=["Accounts"],
    responses={
        200: inline_serializer(
            "MeOut",
            fields={
                "user": UserOutSerializer(allow_null=True, help_text="null for an anonymous workspace"),
                "workspace": WorkspaceOutSerializer(),
                "plan": PlanOutSerializer(),
                "api_key_prefix": serializers.CharField(
                    allow_null=True, help_text="Prefix of the primary key"
                ),
                "auth": serializers.ChoiceField(choices=["api_key", "jwt"]),
            },
        ),
        **error_responses(401, 429),
    },
    description="Who is calling: the user (or null for a key-only workspace), the workspace and its plan.",
)
@api_view(["GET"])
def me(request: Request) -> Response:
    principal = request.user
    workspace = principal.workspace
    user = principal.user if principal.user is not None else workspace.owner
    return Response(
        {
            "user": UserOutSerializer(user).data if user is not None else None,
            "workspace": WorkspaceOutSerializer(workspace).data,
            "plan": PlanOutSerializer(workspace.plan).data,
            "api_key_prefix": selectors.api_key_primary_prefix(workspace=workspace),
            "auth": "api_key" if principal.api_key is not None else "jwt",
        }
    )


@extend_schema(
    tags=["Accounts"],
    request=None,
    responses={
        200: inline_serializer(
            "RotateKeyOut",
            fields={"api_key": serializers.CharField(), "api_key_prefix": serializers.CharField()},
        ),
        **error_responses(401, 429),
    },
    description="Replace the workspace's primary key. The old primary key stops working at once; "
    "named extra keys are not touched.",
)
@api_view(["POST"])
def rotate_key(request: Request) -> Response:
    issued = services.api_key_rotate_primary(workspace=request.user.workspace)
    return Response({"api_key": issued.raw, "api_key_prefix": issued.key.prefix})


@extend_schema(tags=["Accounts"])
class ApiKeyViewSet(mixins.ListModelMixin, WorkspaceViewSet):
    """Named extra keys: list, create (the key is shown once), revoke."""

    @extend_schema(
        responses={200: list_envelope("ApiKeyList", ApiKeyOutSerializer), **error_responses(400, 401, 429)},
        description="The workspace's active keys (the primary key included, `is_primary: true`), newest first.",
    )
    def list(self, request: Request) -> Response:
        queryset = selectors.api_keys_active(workspace=self.workspace)
        return Response(
            paginate(queryset, request.query_params, lambda rows: ApiKeyOutSerializer(rows, many=True).data)
        )

    @creates(
        ApiKeyInSerializer,
        ApiKeyCreatedOutSerializer,
        errors=(400, 401, 409, 415, 422, 429),
        description="Issue a named key. `api_key` is in this response (and in an Idempotency-Key replay of it) only.",
    )
    def create(self, request: Request) -> Response:
        data = validated_body(request, ApiKeyInSerializer)
        issued = services.api_key_create_named(workspace=self.workspace, name=data["name"])
        return Response(ApiKeyCreatedOutSerializer(issued.key, context={"raw": issued.raw}).data, status=201)

    @extend_schema(
        responses={204: OpenApiResponse(description="Revoked"), **error_responses(401, 404, 429)},
        description="Revoke a key: it stops working at once. Unknown, revoked or another workspace's key: 404.",
    )
    def destroy(self, request: Request, key_id: str) -> Response:
        services.api_key_revoke(workspace=self.workspace, key_id=key_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
