"""Inbound webhooks -> jobs (Spooled's `POST /api/v1/webhooks/{org_id}/{github|stripe|custom}`).

Each delivery is verified against the workspace's own secret before anything is written: GitHub's
`X-Hub-Signature-256` (HMAC-SHA256 of the raw body), the Stripe library's `Stripe-Signature` check, or the
`X-Webhook-Token` of custom deliveries. A delivery that fails (or a workspace that is unknown or has no secret
set) is 401 with one message, so the answer tells nothing about which workspaces exist. A verified delivery
becomes one job (deduplicated by the provider's delivery id) and one line of the inbound log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from django.db import transaction

from accounts.exceptions import Unauthorized
from accounts.models import Workspace
from config.exceptions import ValidationFailed
from jobs.services.enqueue import job_enqueue
from jobs.specs import JobSpec
from jobs.views.pull_inputs import check_size
from spooled.models import InboundDelivery, IngestSettings
from spooled.services import queue_get_or_create_pull, queue_name_check

REFUSED = "The webhook signature or token is missing or does not match."


def ingest_settings(workspace: Workspace) -> IngestSettings:
    """The workspace's settings, created on first use with a fresh custom token."""
    found = IngestSettings.objects.filter(workspace=workspace).first()
    if found is not None:
        return found
    with transaction.atomic():
        found, _ = IngestSettings.objects.get_or_create(
            workspace=workspace, defaults={"custom_token": _new_token()}
        )
    return found


def _new_token() -> str:
    return "whk_" + secrets.token_urlsafe(32)


def custom_token_regenerate(workspace: Workspace) -> IngestSettings:
    found = ingest_settings(workspace)
    found.custom_token = _new_token()
    found.save(update_fields=["custom_token", "updated_at"])
    return found


def ingest_settings_update(workspace: Workspace, changes: dict[str, str]) -> IngestSettings:
    if "queue_name" in changes:
        queue_name_check(changes["queue_name"])
    found = ingest_settings(workspace)
    for field, value in changes.items():
        setattr(found, field, value)
    found.save(update_fields=[*changes, "updated_at"])
    return found


def _settings_of(org_id: str) -> IngestSettings:
    found = IngestSettings.objects.select_related("workspace__plan").filter(workspace_id=org_id).first()
    if found is None:
        raise Unauthorized(REFUSED)
    return found


def _matches(secret: str, given: str | None, expected: str) -> bool:
    return bool(secret) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ValidationFailed("The body is not valid JSON.", details={"body": ["Expected JSON."]}) from None


def ingest_github(*, org_id: str, raw: bytes, signature: str | None, event: str, delivery: str) -> dict:
    found = _settings_of(org_id)
    expected = "sha256=" + hmac.new(found.github_secret.encode(), raw, hashlib.sha256).hexdigest()
    if not _matches(found.github_secret, signature, expected):
        raise Unauthorized(REFUSED)
    payload = {"source": "github", "event": event, "delivery_id": delivery, "body": _json_body(raw)}
    return _enqueue(found, "github", event or "unknown", found.queue_name, payload, key=delivery or None)


def ingest_stripe(*, org_id: str, raw: bytes, signature: str | None) -> dict:
    import stripe

    found = _settings_of(org_id)
    if not found.stripe_secret or not signature:
        raise Unauthorized(REFUSED)
    try:
        stripe.Webhook.construct_event(raw, signature, found.stripe_secret)
    except stripe.SignatureVerificationError:
        raise Unauthorized(REFUSED) from None
    except ValueError:
        raise ValidationFailed("The body is not valid JSON.", details={"body": ["Expected JSON."]}) from None
    event = _json_body(raw)
    kind = str(event.get("type") or "unknown")
    payload = {"source": "stripe", "event": kind, "body": event}
    return _enqueue(found, "stripe", kind, found.queue_name, payload, key=str(event.get("id") or "") or None)


def ingest_custom(
    *, org_id: str, token: str | None, body: dict[str, Any] | None, verify_only: bool = False
) -> dict:
    """A custom delivery (`body` already checked by the view); `verify_only` checks the token alone."""
    found = _settings_of(org_id)
    if not _matches(found.custom_token, token, found.custom_token):
        raise Unauthorized(REFUSED)
    if verify_only or body is None:
        return {}
    queue_name_check(body["queue_name"])
    payload = body["payload"]
    return _enqueue(
        found,
        "custom",
        body.get("event_type") or "custom",
        body["queue_name"],
        payload,
        key=body.get("idempotency_key"),
        priority=body.get("priority") or 0,
    )


def _enqueue(
    found: IngestSettings,
    provider: str,
    event: str,
    queue_name: str,
    payload: Any,
    *,
    key: str | None,
    priority: int = 0,
) -> dict:
    check_size(payload, "payload")
    workspace = found.workspace
    queue = queue_get_or_create_pull(workspace=workspace, name=queue_name)
    spec = JobSpec(payload=payload, name=event[:128], priority=priority, idempotency_key=key)
    job, created = job_enqueue(workspace=workspace, queue=queue, spec=spec)
    status = "created" if created else "duplicate"
    InboundDelivery.objects.create(
        workspace=workspace,
        provider=provider,
        event_type=event[:128],
        matched_queue=queue.name,
        job_id=job.id,
        status=status,
    )
    return {"job_id": job.id, "queue_name": queue.name, "status": status}


def inbound_log(workspace: Workspace) -> Any:
    return InboundDelivery.objects.filter(workspace=workspace).order_by("-id")
