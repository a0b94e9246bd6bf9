"""Spooled's auth flows over Spindle's accounts: an access token from a key's refresh token (not rotated: the
SDK keeps the refresh token it logged in with), logout, token validation, and the passwordless e-mail login
(a 6-digit code sent through Django's e-mail backend, kept hashed in the cache for 10 minutes, 5 tries)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.exceptions import Unauthorized
from accounts.models import ApiKey, Workspace
from accounts.services import (
    KEY_ID_CLAIM,
    WORKSPACE_ID_CLAIM,
    TokenPair,
    api_key_active,
    tokens_refresh,
    user_tokens,
)

EMAIL_CODE_TTL_S = 600
EMAIL_CODE_TRIES = 5


def access_lifetime_s() -> int:
    return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())


def refresh_lifetime_s() -> int:
    return int(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds())


def access_from_refresh(raw: str) -> TokenPair:
    """A new access token. A key's refresh token stays valid (Spooled does not rotate it); a user's rotates as
    on /v1 (the new refresh token is returned beside)."""
    try:
        token = RefreshToken(raw)  # signature, expiry, type and blacklist
    except TokenError:
        raise Unauthorized("Invalid, expired or revoked refresh token.") from None
    key_id = token.payload.get(KEY_ID_CLAIM)
    if key_id is None:
        return tokens_refresh(refresh=raw)
    key = api_key_active(key_id=key_id, workspace_id=token.payload.get(WORKSPACE_ID_CLAIM))
    if key is None or (key.expires_at is not None and key.expires_at <= timezone.now()):
        raise Unauthorized("The API key of this token was revoked or has expired.")
    return TokenPair(access=str(token.access_token), refresh=raw)


def logout(raw: str | None) -> None:
    """Revoke a refresh token (an unknown or already revoked one changes nothing)."""
    if not raw:
        return
    try:
        RefreshToken(raw).blacklist()
    except TokenError:
        pass


@dataclass(frozen=True)
class TokenInfo:
    workspace_id: str | None
    key: ApiKey | None
    expires_at: Any


def token_info(raw: str) -> TokenInfo:
    """Who an access token acts for; Unauthorized when it is invalid or expired."""
    try:
        access = AccessToken(raw)
    except TokenError:
        raise Unauthorized("Invalid or expired token.") from None
    key_id = access.payload.get(KEY_ID_CLAIM)
    key = api_key_active(key_id=key_id) if key_id else None
    workspace_id = access.payload.get(WORKSPACE_ID_CLAIM)
    if workspace_id is None and not key_id:
        workspace_id = (
            Workspace.objects.filter(owner_id=access.payload.get("user_id"))
            .values_list("id", flat=True)
            .first()
        )
    return TokenInfo(workspace_id=workspace_id, key=key, expires_at=access.payload.get("exp"))


def _code_key(email: str) -> str:
    return "spooled:email-login:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def email_login_start(email: str) -> None:
    """Send a login code when a user with this address exists; the answer is the same either way."""
    user = get_user_model().objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        return
    code = f"{secrets.randbelow(1_000_000):06d}"
    digest = hashlib.sha256(code.encode()).hexdigest()
    cache.set(_code_key(email), {"digest": digest, "tries": 0, "user_id": user.pk}, EMAIL_CODE_TTL_S)
    send_mail(
        "Your Spindle login code",
        f"Your login code is {code}. It expires in {EMAIL_CODE_TTL_S // 60} minutes.",
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
    )


def email_login_verify(email: str, code: str) -> TokenPair:
    """Trade a login code for the user's tokens; a wrong code counts a try, the fifth wrong one ends the code."""
    key = _code_key(email)
    stored = cache.get(key)
    if stored is None:
        raise Unauthorized("No login code is pending for this address, or it expired.")
    if not constant_time_compare(stored["digest"], hashlib.sha256(code.encode()).hexdigest()):
        stored["tries"] += 1
        if stored["tries"] >= EMAIL_CODE_TRIES:
            cache.delete(key)
        else:
            cache.set(key, stored, EMAIL_CODE_TTL_S)
        raise Unauthorized("Wrong login code.")
    cache.delete(key)
    user = get_user_model().objects.filter(pk=stored["user_id"], is_active=True).first()
    if user is None:
        raise Unauthorized("This user is no longer active.")
    return user_tokens(user)
