"""Writes for users, workspaces, API keys and JWT tokens."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django_ratelimit.core import get_usage
from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from config.exceptions import Conflict, NotFound, ValidationFailed

from .exceptions import Unauthorized
from .models import ApiKey, Plan, Workspace

logger = logging.getLogger(__name__)

KEY_PREFIX = "rt_ws_"
VISIBLE_PREFIX_LEN = 12
MAX_ACTIVE_KEYS = 100


def hash_api_key(raw_key: str) -> str:
    """Keys are random, so a fast SHA-256 is the right hash (not a password hasher)."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str  # shown once, never stored


def api_key_create(*, workspace: Workspace, name: str = "default", is_primary: bool = False) -> IssuedKey:
    """Issue a new key for the workspace; the raw key is returned once."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        workspace=workspace,
        name=name,
        is_primary=is_primary,
        prefix=raw[:VISIBLE_PREFIX_LEN],
        key_hash=hash_api_key(raw),
    )
    return IssuedKey(key=key, raw=raw)


def api_key_create_named(*, workspace: Workspace, name: str) -> IssuedKey:
    """An extra named key (`POST /v1/keys`), capped so a leaked key cannot mint keys without bound."""
    with transaction.atomic():
        # Lock the workspace row so two parallel creates cannot both pass the cap.
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        active = ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True).count()
        if active >= MAX_ACTIVE_KEYS:
            raise Conflict(
                f"A workspace can have at most {MAX_ACTIVE_KEYS} active keys.",
                details={"limit": MAX_ACTIVE_KEYS},
            )
        return api_key_create(workspace=workspace, name=name)


def api_key_revoke(*, workspace: Workspace, key_id: str) -> ApiKey:
    """Revoke an active key of this workspace; it stops authenticating at once. Unknown or revoked: 404."""
    now = timezone.now()
    updated = ApiKey.objects.filter(workspace=workspace, id=key_id, revoked_at__isnull=True).update(
        revoked_at=now, is_primary=False
    )
    if not updated:
        raise NotFound("API key not found.")
    return ApiKey.objects.get(workspace=workspace, id=key_id)


def api_keys_revoke(*, key_ids: list[str]) -> int:
    """Staff action: revoke these keys, whatever their workspace. Returns how many were active."""
    return ApiKey.objects.filter(id__in=key_ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), is_primary=False
    )


def api_key_rotate_primary(*, workspace: Workspace) -> IssuedKey:
    """Replace the workspace's primary key: the old one is revoked in the same transaction."""
    with transaction.atomic():
        # Serialise rotations of one workspace: two parallel calls must not leave two primary keys.
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        ApiKey.objects.filter(workspace=workspace, is_primary=True, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), is_primary=False
        )
        return api_key_create(workspace=workspace, name="default", is_primary=True)


def workspace_create(
    *, name: str, plan_code: str = "free", is_anonymous: bool = False, owner: Any = None
) -> tuple[Workspace, IssuedKey]:
    """Create a workspace with its primary key."""
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        raise ValidationFailed(details={"plan": [f"Unknown plan '{plan_code}'."]})
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, plan=plan, is_anonymous=is_anonymous, owner=owner)
        issued = api_key_create(workspace=workspace, name="default", is_primary=True)
    return workspace, issued


def workspace_set_plan(*, workspace: Workspace, plan_code: str) -> Workspace:
    """Staff or billing: move the workspace to another plan (caps apply to the next request)."""
    if not Plan.objects.filter(code=plan_code).exists():
        raise ValidationFailed(details={"plan": [f"Unknown plan '{plan_code}'."]})
    Workspace.objects.filter(pk=workspace.pk).update(plan_id=plan_code, updated_at=timezone.now())
    workspace.refresh_from_db()
    return workspace


# --- users and tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str

    def as_dict(self) -> dict[str, str]:
        return {"access": self.access, "refresh": self.refresh}


# A user's tokens (and dashboard sessions) carry a stamp of the password hash they were issued under. Whatever
# changes the password (the admin, `manage.py changepassword`, set_password), every older token and session
# stops matching, with nothing stored per token.
PASSWORD_CLAIM = "pwd"


def password_stamp(password_hash: str) -> str:
    """An HMAC of the stored password hash (never the hash itself), short enough for every token."""
    return salted_hmac("spindle.accounts.password-stamp", password_hash, algorithm="sha256").hexdigest()[:24]


def password_stamp_matches(user: AbstractBaseUser, stamp: object) -> bool:
    return isinstance(stamp, str) and constant_time_compare(stamp, password_stamp(user.password))


def _tokens_for(user: AbstractBaseUser) -> TokenPair:
    refresh = RefreshToken.for_user(user)  # records an OutstandingToken, so it can be blacklisted
    refresh[PASSWORD_CLAIM] = password_stamp(user.password)  # copied into the access token too
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def user_tokens(user: AbstractBaseUser) -> TokenPair:
    """A fresh pair for a user another check already proved (Spooled's passwordless e-mail login)."""
    return _tokens_for(user)


@dataclass(frozen=True)
class Registration:
    user: Any
    workspace: Workspace
    key: IssuedKey
    tokens: TokenPair


def user_register(*, email: str, password: str, name: str) -> Registration:
    """Create a user, their workspace (free plan) and its primary key; return fresh tokens."""
    User = get_user_model()
    email = email.strip().lower()
    if User.objects.filter(username=email).exists():
        raise Conflict(
            "An account with this email already exists.", details={"email": ["Already registered."]}
        )
    try:
        with transaction.atomic():
            user = User(username=email, email=email, first_name=name[:150])
            user.set_password(password)
            user.save()
            workspace, issued = workspace_create(name=name, owner=user)
    except IntegrityError:
        # A parallel registration of the same email won the unique username index.
        raise Conflict(
            "An account with this email already exists.", details={"email": ["Already registered."]}
        ) from None
    return Registration(user=user, workspace=workspace, key=issued, tokens=_tokens_for(user))


def user_login(*, email: str, password: str) -> tuple[Any, TokenPair]:
    """Check the credentials and issue tokens; a user without a workspace (e.g. staff) gets one now."""
    # authenticate() runs the hasher for unknown users too, so timing does not reveal which emails exist.
    user = authenticate(None, username=email.strip().lower(), password=password)
    if user is None:
        raise Unauthorized("Wrong email or password.")
    if not Workspace.objects.filter(owner=user).exists():
        workspace_create(name=user.get_full_name() or user.get_username(), owner=user)
    return user, _tokens_for(user)


# Claims of a token issued for an API key (POST /v1/auth/login with `api_key`). Such a token has no user claim:
# it acts on the key's workspace (anonymous workspaces have no user at all) and only while the key is active,
# so revoking or rotating the key ends its tokens too (access at the next request, refresh at the next refresh).
KEY_ID_CLAIM = "key_id"
WORKSPACE_ID_CLAIM = "workspace_id"


def _tokens_for_key(key: ApiKey) -> TokenPair:
    refresh = RefreshToken()
    refresh[KEY_ID_CLAIM] = key.id
    refresh[WORKSPACE_ID_CLAIM] = key.workspace_id
    # Recorded like a user's refresh token, so rotation can blacklist it (no user: the key is the principal).
    OutstandingToken.objects.create(
        user=None,
        jti=refresh[jwt_settings.JTI_CLAIM],
        token=str(refresh),
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
    )
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


KEY_RATE_GROUP = "spindle:api-key"


def api_key_check(key: ApiKey, *, request: Any, now: datetime) -> None:
    """Scoped keys, checked on every authenticated request (/v1 and /api/v1): an expired key is 401, a
    queue-scoped key outside its queues 403 (`ApiKey.refusal`), and a key with its own `rate_limit` is held
    to that many requests a minute (429; counted in the shared cache, failing open when it is down)."""
    refusal = key.refusal(now=now, path=request.path_info)
    if refusal is not None:
        status, message = refusal
        raise (exceptions.AuthenticationFailed if status == 401 else exceptions.PermissionDenied)(message)
    if key.rate_limit is None:
        return
    try:
        usage = get_usage(
            request,
            group=KEY_RATE_GROUP,
            key=lambda group, req: key.id,
            rate=(key.rate_limit, 60),
            increment=True,
        )
    except Exception:
        logger.exception("rate-limit cache unavailable; letting the request through")
        return
    if usage is not None and usage["should_limit"]:
        raise exceptions.Throttled(
            wait=max(1, usage["time_left"]), detail="This API key's rate limit is reached."
        )


def api_key_active(*, key_id: str, workspace_id: str | None = None) -> ApiKey | None:
    """The active key with this id (and workspace, if given), with its workspace, plan and owner loaded."""
    key = (
        ApiKey.objects.select_related("workspace__plan", "workspace__owner")
        .filter(id=key_id, revoked_at__isnull=True)
        .first()
    )
    if key is None or (workspace_id is not None and key.workspace_id != workspace_id):
        return None
    return key


def api_key_login(*, raw_key: str) -> tuple[ApiKey, TokenPair]:
    """Exchange an active workspace key for JWTs acting on its workspace; unknown or revoked keys are 401."""
    key = None
    if raw_key.startswith(KEY_PREFIX):
        # By SHA-256 digest on a unique index: no timing signal about stored keys.
        key = (
            ApiKey.objects.select_related("workspace__plan", "workspace__owner")
            .filter(key_hash=hash_api_key(raw_key), revoked_at__isnull=True)
            .first()
        )
    if key is None:
        raise Unauthorized("Unknown or revoked API key.")
    return key, _tokens_for_key(key)


def tokens_refresh(*, refresh: str) -> TokenPair:
    """Trade a refresh token for a new pair; the used one is blacklisted and answers 401 from then on."""
    try:
        token = RefreshToken(refresh)  # signature, expiry, type and blacklist
    except TokenError:
        raise Unauthorized("Invalid, expired or already used refresh token.") from None
    jti = token.payload.get(jwt_settings.JTI_CLAIM)
    user_id = token.payload.get(jwt_settings.USER_ID_CLAIM)
    with transaction.atomic():
        # Lock the outstanding row: two parallel refreshes with one token must not both succeed.
        outstanding = OutstandingToken.objects.select_for_update().filter(jti=jti).first()
        if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
            raise Unauthorized("Invalid, expired or already used refresh token.")
        BlacklistedToken.objects.create(token=outstanding)
        key_id = token.payload.get(KEY_ID_CLAIM)
        if key_id is not None:
            key = api_key_active(key_id=key_id, workspace_id=token.payload.get(WORKSPACE_ID_CLAIM))
            if key is None:
                raise Unauthorized("The API key of this token was revoked.")
            return _tokens_for_key(key)
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            raise Unauthorized("The user of this token no longer exists or is inactive.")
        if not password_stamp_matches(user, token.payload.get(PASSWORD_CLAIM)):
            raise Unauthorized("The password changed since this token was issued; log in again.")
        return _tokens_for(user)
