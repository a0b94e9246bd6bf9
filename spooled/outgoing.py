"""Spooled's outgoing webhooks over Spindle's subscriptions: event names both ways, a synchronous test ping,
and the redelivery of one delivery."""

from __future__ import annotations

import json
import time
from typing import Any

from django.utils import timezone

from alerts.models import OutboundStatus, WebhookDelivery, WebhookSubscription
from alerts.outbound import deliveries_send, post_many, signed_headers
from config.exceptions import NotFound, ValidationFailed
from config.ids import new_id

# Spooled event -> Spindle event types. Spooled's worker and workflow events have no Spindle counterpart.
EVENTS: dict[str, tuple[str, ...]] = {
    "job.created": ("job:waiting", "job:delayed"),
    "job.started": ("job:active",),
    "job.completed": ("job:completed",),
    "job.failed": ("job:failed",),
    "job.cancelled": ("job:removed",),
    "job.deadlettered": ("job:dead",),
    "job.retried": ("job:waiting",),
    "queue.paused": ("queue:paused",),
    "queue.resumed": ("queue:resumed",),
    "schedule.triggered": ("schedule:fired",),
}
UNSUPPORTED_EVENTS = ("worker.registered", "worker.deregistered", "workflow.completed", "workflow.failed")


def events_to_spindle(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationFailed(details={"events": ["Expected a non-empty list of event names."]})
    problems = [f"'{e}' is not sent by this server." for e in events if e in UNSUPPORTED_EVENTS]
    problems += [f"Unknown event '{e}'." for e in events if e not in EVENTS and e not in UNSUPPORTED_EVENTS]
    if problems:
        raise ValidationFailed(details={"events": problems + [f"Supported: {', '.join(EVENTS)}."]})
    return sorted({t for e in events for t in EVENTS[e]})


def events_from_spindle(types: list[str]) -> list[str]:
    if "*" in types:
        return list(EVENTS)
    wanted = set(types)
    return [name for name, ours in EVENTS.items() if set(ours) <= wanted]


def event_from_spindle(event_type: str) -> str:
    """One Spindle event type in Spooled's words (`job:dead` -> `job.deadlettered`); unknown ones as they are."""
    return next((name for name, ours in EVENTS.items() if event_type in ours), event_type)


def webhook_test(subscription: WebhookSubscription) -> dict[str, Any]:
    """POST a signed `webhook.test` event to the subscription's URL now; nothing is stored."""
    msg_id = new_id("msg")
    body = json.dumps(
        {
            "id": msg_id,
            "type": "webhook.test",
            "created_at": timezone.now().isoformat(),
            "data": {"test": True},
        }
    )
    headers = signed_headers(
        secret=subscription.secret, msg_id=msg_id, body=body, extra={"Spindle-Event-Type": "webhook.test"}
    )
    started = time.perf_counter()
    [result] = post_many([(subscription.url, body, headers)])
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    return {
        "success": result.ok,
        "status_code": result.status,
        "response_time_ms": elapsed_ms,
        "error": result.error or None,
    }


def delivery_retry(subscription: WebhookSubscription, delivery_id: str) -> dict[str, Any]:
    """Send one delivery of the subscription again now (a failed one gets one more attempt)."""
    found = WebhookDelivery.objects.filter(subscription=subscription, pk=delivery_id).first()
    if found is None:
        raise NotFound(f"Delivery '{delivery_id}' not found.")
    WebhookDelivery.objects.filter(pk=found.pk).update(
        status=OutboundStatus.PENDING, next_attempt_at=timezone.now()
    )
    sent = deliveries_send(ids=[found.pk])
    return {
        "success": bool(sent),
        "message": "Delivered." if sent else "Sent again; the target did not accept it.",
    }
