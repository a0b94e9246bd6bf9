"""Bearer authentication: workspace API keys (`rt_ws_…`) and users' JWT access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from config import db

from .models import ApiKey, Plan, Workspace
from .services import (
    KEY_ID_CLAIM,
    KEY_PREFIX,
    PASSWORD_CLAIM,
    WORKSPACE_ID_CLAIM,
    api_key_active,
    api_key_check,
    hash_api_key,
    password_stamp_matches,
)

LAST_USED_RESOLUTION = timedelta(minutes=1)


_Loader = tuple[type, list[str], int, int, list[tuple[int, list, Any]]]


@dataclass(frozen=True)
class Companion:
    """A row of the key's workspace that a view reads on every request, named by one of its URL arguments: read
    in the key lookup's round trip (a LEFT JOIN) instead of a query of its own. A view declares it as
    `auth_companion` (the queue routes name their queue); it reaches the view as `request.user.companion`, or
    None when no such row exists. The row is looked up in the key's workspace only."""

    model: type
    url_kwarg: str
    column: str


def _key_lookup_sql(companion: Companion | None = None) -> tuple[str, list[_Loader]]:
    """One SELECT of key + workspace + plan (+ the companion) in concrete-field order, built once per process:
    compiling the equivalent select_related queryset cost more CPU than the query itself on every API request."""
    quote = connection.ops.quote_name
    columns: list[str] = []
    loaders: list[_Loader] = []
    tables: list[tuple[type, str]] = [(ApiKey, "k"), (Workspace, "w"), (Plan, "p")]
    if companion is not None:
        tables.append((companion.model, "c"))
    for model, alias in tables:
        fields = model._meta.concrete_fields
        start = len(columns)
        columns += [f"{alias}.{quote(f.column)}" for f in fields]
        # The value converters the ORM's compiler would apply (e.g. JSON and SQLite datetimes), found once.
        converters = []
        for i, f in enumerate(fields):
            col = f.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
            if found:
                converters.append((i, found, col))
        loaders.append((model, [f.attname for f in fields], start, len(columns), converters))
    sql = (
        f"SELECT {', '.join(columns)} FROM {ApiKey._meta.db_table} k"
        f" JOIN {Workspace._meta.db_table} w ON w.{quote(Workspace._meta.pk.column)} = k.{quote('workspace_id')}"
        f" JOIN {Plan._meta.db_table} p ON p.{quote(Plan._meta.pk.column)} = w.{quote('plan_id')}"
    )
    if companion is not None:
        sql += (
            f" LEFT JOIN {companion.model._meta.db_table} c ON c.{quote('workspace_id')}"
            f" = w.{quote(Workspace._meta.pk.column)} AND c.{quote(companion.column)} = %s"
        )
    return sql + f" WHERE k.{quote('key_hash')} = %s", loaders


_KEY_LOOKUP: dict[tuple[str, Companion | None], tuple[str, list[_Loader]]] = {}


def _api_key_by_hash(
    key_hash: str, companion: Companion | None = None, value: str | None = None
) -> tuple[ApiKey, Any] | None:
    """(the key with its workspace and plan, the companion row named `value` or None), or None."""
    if value is None:
        companion = None
    lookup = _KEY_LOOKUP.get((connection.vendor, companion))
    if lookup is None:
        lookup = _KEY_LOOKUP[(connection.vendor, companion)] = _key_lookup_sql(companion)
    sql, loaders = lookup
    with connection.cursor() as cursor:
        # Prepared on the connection: this join runs on every authenticated request.
        db.execute_prepared(cursor, [(sql, [key_hash] if companion is None else [value, key_hash])])
        row = cursor.fetchone()
    if row is None:
        return None
    objs = []
    for model, attnames, start, end, converters in loaders:
        values = list(row[start:end])
        if (
            companion is not None
            and model is companion.model
            and values[attnames.index(model._meta.pk.attname)] is None
        ):
            objs.append(None)  # the companion's LEFT JOIN found no row
            continue
        for i, funcs, col in converters:
            for func in funcs:
                values[i] = func(values[i], col, connection)
        objs.append(model.from_db(connection.alias, attnames, values))
    key, workspace, plan = objs[:3]
    workspace.plan = plan
    key.workspace = workspace
    return key, (objs[3] if companion is not None else None)


@dataclass
class WorkspacePrincipal:
    """request.user for API calls: the workspace acting, and the user behind it if any."""

    workspace: Workspace
    user: object | None = None
    api_key: ApiKey | None = None
    is_authenticated: bool = True
    is_staff: bool = False
    companion: Any = None  # the view's `auth_companion` row (Companion), or None when there is none
    companion_of: str | None = None  # the URL value the key's lookup read `companion` by (None: not read)

    @property
    def is_anonymous(self) -> bool:
        return False


def bearer_token(request: Request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <key>'.")
    return token.strip()


def _companion_of(request: Request) -> tuple[Companion | None, str | None]:
    """The view's `auth_companion` and the URL argument that names its row (None, None without one)."""
    context = getattr(request, "parser_context", None) or {}
    companion = getattr(context.get("view"), "auth_companion", None)
    if companion is None:
        return None, None
    value = (context.get("kwargs") or {}).get(companion.url_kwarg)
    return (companion, value) if isinstance(value, str) else (None, None)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[WorkspacePrincipal, ApiKey] | None:
        token = bearer_token(request)
        if token is None or not token.startswith(KEY_PREFIX):
            return None  # another authenticator (JWT) may take it; none -> 401
        companion, value = _companion_of(request)
        # The lookup is by SHA-256 digest on a unique index: no timing signal about stored keys.
        found = _api_key_by_hash(hash_api_key(token), companion, value)
        if found is None or found[0].revoked_at is not None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        key, row = found
        now = timezone.now()
        api_key_check(key, request=request, now=now)  # scoped keys: expiry, queues, own rate limit
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            # At most one write a minute per key, and never blocking on a concurrent one.
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return WorkspacePrincipal(
            workspace=key.workspace,
            api_key=key,
            companion=row,
            companion_of=value if companion is not None else None,
        ), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="spindle"'


class JwtAuthentication(authentication.BaseAuthentication):
    """A user's access token acts on the user's workspace, with the same principal shape as a key.

    Runs after ApiKeyAuthentication: any bearer token that is not a key must be a valid access token, so an
    unknown token is a 401 here rather than falling through to "not authenticated".
    """

    def authenticate(self, request: Request) -> tuple[WorkspacePrincipal, AccessToken] | None:
        token = bearer_token(request)
        if token is None or token.startswith(KEY_PREFIX):
            return None
        try:
            access = AccessToken(token)  # signature, expiry and token type (a refresh token is refused)
        except TokenError:
            raise exceptions.AuthenticationFailed("Invalid or expired token.") from None
        key_id = access.payload.get(KEY_ID_CLAIM)
        if key_id is not None:
            # A token from an API-key login: it acts on the key's workspace while the key is active.
            key = api_key_active(key_id=key_id, workspace_id=access.payload.get(WORKSPACE_ID_CLAIM))
            if key is None:
                raise exceptions.AuthenticationFailed("The API key of this token was revoked.")
            api_key_check(key, request=request, now=timezone.now())
            return WorkspacePrincipal(workspace=key.workspace), access
        user_id = access.payload.get(jwt_settings.USER_ID_CLAIM)
        workspace = (
            Workspace.objects.select_related("plan", "owner")
            .filter(owner_id=user_id, owner__is_active=True)
            .first()
        )
        if workspace is None:
            raise exceptions.AuthenticationFailed("The user of this token has no active workspace.")
        user = workspace.owner
        if not password_stamp_matches(user, access.payload.get(PASSWORD_CLAIM)):
            raise exceptions.AuthenticationFailed(
                "The password changed since this token was issued; log in again."
            )
        principal = WorkspacePrincipal(workspace=workspace, user=user, is_staff=bool(user.is_staff))
        return principal, access

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="spindle"'
