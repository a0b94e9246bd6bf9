"""Credentials of the surfaces that carry a key outside a DRF request (WebSocket `?token=`, Spooled's SSE, gRPC
`x-api-key`): the same key checks as every route, scoped keys included."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import workspace_create
from spooled.realtime.auth import principal_for_token

pytestmark = pytest.mark.django_db


def test_an_active_key_names_its_workspace(plans):
    workspace, key = workspace_create(name="streams", plan_code="pro")
    principal = principal_for_token(key.raw)
    assert principal is not None and principal.workspace.id == workspace.id


def test_expired_and_queue_scoped_keys_are_refused(plans):
    """A stream or a gRPC channel is not bound to one queue: a queue-scoped key cannot use it (it would reach
    every queue); an expired key is refused as everywhere. Before, the check crashed the call (gRPC INTERNAL)."""
    _, scoped = workspace_create(name="scoped", plan_code="pro")
    scoped.key.queues = ["only-this"]
    scoped.key.save(update_fields=["queues"])
    assert principal_for_token(scoped.raw) is None

    _, expired = workspace_create(name="expired", plan_code="pro")
    expired.key.expires_at = timezone.now() - timedelta(seconds=1)
    expired.key.save(update_fields=["expires_at"])
    assert principal_for_token(expired.raw) is None
