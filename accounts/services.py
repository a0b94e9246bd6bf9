"""Writes for workspaces and API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing.models import Plan
from config.exceptions import NotFound, ValidationFailed

from .models import ApiKey, Workspace

KEY_PREFIX = "rt_ws_"
VISIBLE_PREFIX_LEN = 12


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


def api_key_revoke(*, workspace: Workspace, key_id: str) -> ApiKey:
    """Revoke a key of this workspace; it stops authenticating at once."""
    updated = ApiKey.objects.filter(workspace=workspace, id=key_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    key = ApiKey.objects.filter(workspace=workspace, id=key_id).first()
    if key is None or (not updated and key.revoked_at is None):
        raise NotFound("API key not found.")
    return key


def workspace_create(*, name: str, plan_code: str = "free", is_anonymous: bool = False, owner=None) -> tuple[Workspace, IssuedKey]:
    """Create a workspace with its primary key."""
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        raise ValidationFailed(details={"plan": [f"Unknown plan '{plan_code}'."]})
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, plan=plan, is_anonymous=is_anonymous, owner=owner)
        issued = api_key_create(workspace=workspace, name="default", is_primary=True)
    return workspace, issued
