"""Sending webhook deliveries and alert notifications, with retries kept in the database.

A due row (status pending, next_attempt_at <= now by the database clock) is claimed FOR UPDATE SKIP LOCKED and
leased by pushing next_attempt_at forward, the transaction commits, the HTTP requests (or emails) go out
concurrently with no transaction open, and the results are written in one transaction, fenced by `attempts`
so a row re-claimed after a crashed run is not written twice. Retry delays: about 5 s, 30 s, 2 min, 10 min, 1 h.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from config import outbound
from jobs.services.engine import RESPONSE_BODY_MAX
from queues.events import iso

from .models import (
    Alert,
    AlertNotification,
    Channel,
    NotificationKind,
    OutboundStatus,
    WebhookDelivery,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (5, 30, 120, 600, 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
TIMEOUT_S = 10
# A claimed row is due again after this long if its sender died before writing the result.
LEASE_S = 120
BATCH = 100
ERROR_MAX = 500
RESPONSE_KEPT = 1024


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after failed attempt number `attempts` (1-based); None when no attempt is left."""
    if attempts >= MAX_ATTEMPTS:
        return None
    scale = float(getattr(settings, "SPINDLE_BACKOFF_SCALE", 1.0))
    return timedelta(seconds=RETRY_DELAYS_S[attempts - 1] * scale)


@dataclass
class Result:
    ok: bool
    status: int | None = None
    body: str = ""
    error: str = ""


# --- HTTP ----------------------------------------------------------------------------------------------------


def signed_headers(
    *, secret: str, msg_id: str, body: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Standard Webhooks headers, as push deliveries send them (config.outbound.sign)."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": outbound.user_agent(),
        **(extra or {}),
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": outbound.sign(secret, msg_id, timestamp, body),
    }


def _result(reply: outbound.Reply) -> Result:
    if reply.failure == "timeout":
        return Result(False, error=f"No response within {TIMEOUT_S} s.")
    if reply.status is None:
        return Result(False, error=reply.error)
    text = reply.body[:RESPONSE_KEPT]
    if 200 <= reply.status < 300:
        return Result(True, reply.status, text)
    return Result(False, reply.status, text, f"The target answered HTTP {reply.status}.")


async def send_many(requests: list[tuple[str, str, dict[str, str]]]) -> list[Result]:
    """POST each (url, body, headers) concurrently on this loop's pooled, SSRF-guarded session."""
    if not requests:
        return []
    session = await outbound.session()
    replies = await asyncio.gather(
        *(
            outbound.request(
                session,
                method="POST",
                url=url,
                body=body,
                headers=headers,
                timeout_s=TIMEOUT_S,
                body_max_bytes=RESPONSE_BODY_MAX,
            )
            for url, body, headers in requests
        )
    )
    return [_result(reply) for reply in replies]


def post_many(requests: list[tuple[str, str, dict[str, str]]]) -> list[Result]:
    """send_many on this thread's persistent loop, waiting for the answers."""
    if not requests:
        return []
    return outbound.run(send_many(requests))


@dataclass
class Sending:
    """Claimed rows ready to go: their HTTP requests, and `finish`, which records the answers (sync ORM, after
    sending any email the rows need) and returns how many succeeded."""

    requests: list[tuple[str, str, dict[str, str]]]
    finish: Callable[[list[Result]], int]

    def send_here(self) -> int:
        """Send on this thread and record: for in-process callers (tests, a shell, eager tasks)."""
        return self.finish(post_many(self.requests))


# --- claiming and recording ----------------------------------------------------------------------------------


def _claim(model: type, ids: list[str] | None, limit: int) -> list[Any]:
    """Lease due pending rows (or the given ones): bump attempts, push next_attempt_at past the lease."""
    now = timezone.now()
    with transaction.atomic():
        # Due rows only, also when ids are given: a row another sender has just leased (next_attempt_at pushed
        # past now) is not sent twice by a task that names it.
        qs = model.objects.filter(status=OutboundStatus.PENDING, next_attempt_at__lte=Now())
        if ids is not None:
            qs = qs.filter(pk__in=ids)
        # Index alerts_delivery_due / alerts_notification_due; SKIP LOCKED lets parallel sweeps share the work.
        rows = list(qs.order_by("next_attempt_at").select_for_update(skip_locked=True)[:limit])
        for row in rows:
            row.attempts += 1
            row.last_attempt_at = now
            row.next_attempt_at = now + timedelta(seconds=LEASE_S)
        if rows:
            model.objects.bulk_update(rows, ["attempts", "last_attempt_at", "next_attempt_at"])
    return rows


def _record(
    model: type, row: Any, result: Result, *, retry: bool, now: datetime, extra: dict[str, Any]
) -> bool:
    """Write one outcome; returns True if the row became terminally failed. Fenced on the claimed attempt."""
    fields: dict[str, Any] = {"error": result.error[:ERROR_MAX], **extra}
    delay = retry_delay(row.attempts) if retry else None
    if result.ok:
        fields.update(status=OutboundStatus.SUCCESS, next_attempt_at=None, error="")
    elif delay is None:
        fields.update(status=OutboundStatus.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=now + delay)
    updated = model.objects.filter(pk=row.pk, attempts=row.attempts, status=OutboundStatus.PENDING).update(
        **fields
    )
    return bool(updated) and fields.get("status") == OutboundStatus.FAILED


def deliveries_send(*, ids: list[str] | None = None, limit: int = BATCH) -> int:
    """Send due webhook deliveries (or the given ids); returns how many succeeded."""
    sending = deliveries_claim(ids=ids, limit=limit)
    return sending.send_here() if sending else 0


def deliveries_claim(*, ids: list[str] | None = None, limit: int = BATCH) -> Sending | None:
    """Lease due webhook deliveries (or the given ids) and build their requests; None if there are none."""
    rows = _claim(WebhookDelivery, ids, limit)
    if not rows:
        return None
    subs = {s.pk: s for s in WebhookSubscription.objects.filter(pk__in={r.subscription_id for r in rows})}
    to_send = [r for r in rows if r.subscription_id in subs and subs[r.subscription_id].enabled]
    skipped = [r for r in rows if r not in to_send]
    requests = [
        (
            subs[r.subscription_id].url,
            r.body,
            signed_headers(
                secret=subs[r.subscription_id].secret,
                msg_id=r.event_id,
                body=r.body,
                extra={"Spindle-Event-Type": r.event_type, "Spindle-Delivery-Id": r.id},
            ),
        )
        for r in to_send
    ]
    return Sending(requests, lambda results: _deliveries_record(to_send, skipped, results))


def _deliveries_record(
    to_send: list[WebhookDelivery], skipped: list[WebhookDelivery], results: list[Result]
) -> int:
    now = timezone.now()
    failed_subs: dict[str, int] = {}
    with transaction.atomic():
        for row in skipped:
            # Disabled after the delivery was queued: nothing is sent, and it does not count as a target failure.
            WebhookDelivery.objects.filter(pk=row.pk).update(
                status=OutboundStatus.FAILED, next_attempt_at=None, error="The subscription is disabled."
            )
        for row, result in zip(to_send, results, strict=True):
            extra = {"response_status": result.status, "response_body": result.body}
            if _record(WebhookDelivery, row, result, retry=True, now=now, extra=extra):
                failed_subs[row.subscription_id] = failed_subs.get(row.subscription_id, 0) + 1
        for sub_id, n in failed_subs.items():
            WebhookSubscription.objects.filter(pk=sub_id).update(
                failure_count=F("failure_count") + n, last_failure_at=now
            )
    return sum(1 for r in results if r.ok)


# --- alert notifications -------------------------------------------------------------------------------------


def _text(alert: Alert, n: AlertNotification) -> tuple[str, str]:
    """(subject, text) of a notification."""
    data = n.data or {}
    scope = []
    if alert.queue_name:
        scope.append(f"queue '{alert.queue_name}'")
    if alert.schedule_name:
        scope.append(f"schedule '{alert.schedule_name}'")
    where = " and ".join(scope) or "the workspace"
    if n.kind == NotificationKind.FIRED:
        subject = f"[Spindle] {alert.name}: failures in {where}"
        text = f"Alert '{alert.name}' fired: {data.get('consecutive_failures')} consecutive failed executions in {where}."
        last = data.get("last_execution") or {}
        if last.get("error"):
            text += f" Last error: {(last['error'] or {}).get('message')}"
    elif n.kind == NotificationKind.RECOVERED:
        subject = f"[Spindle] {alert.name}: recovered"
        text = f"Alert '{alert.name}' recovered: an execution in {where} succeeded."
    else:
        subject = f"[Spindle] {alert.name}: test"
        text = f"Test notification for alert '{alert.name}' ({where})."
    return subject, text


def notification_body(alert: Alert, n: AlertNotification) -> str:
    """The JSON a webhook-channel alert receives."""
    subject, text = _text(alert, n)
    return json.dumps(
        {
            "id": n.id,
            "type": f"alert:{n.kind}",
            "alert": {
                "id": alert.id,
                "name": alert.name,
                "queue": alert.queue_name,
                "schedule": alert.schedule_name,
            },
            "text": text,
            "data": n.data,
            "created_at": iso(n.created_at),
        },
        separators=(",", ":"),
    )


def notifications_send(*, ids: list[str] | None = None, limit: int = BATCH, retry: bool = True) -> int:
    """Send due alert notifications (or the given ids); returns how many were sent.

    A test message (`POST /v1/alerts/{id}/test`) gets one attempt, whoever sends it: never retried."""
    sending = notifications_claim(ids=ids, limit=limit, retry=retry)
    return sending.send_here() if sending else 0


def notifications_claim(
    *, ids: list[str] | None = None, limit: int = BATCH, retry: bool = True
) -> Sending | None:
    """Lease due alert notifications (or the given ids) and build their webhook and Slack requests; emails are
    sent by the Sending's `finish`. None if there are none."""
    rows = _claim(AlertNotification, ids, limit)
    if not rows:
        return None
    alerts = {a.pk: a for a in Alert.objects.filter(pk__in={r.alert_id for r in rows})}
    http_rows: list[AlertNotification] = []
    requests: list[tuple[str, str, dict[str, str]]] = []
    for row in rows:
        alert = alerts[row.alert_id]
        if alert.channel == Channel.EMAIL:
            continue
        if alert.channel == Channel.SLACK:
            body = json.dumps({"text": _text(alert, row)[1]}, separators=(",", ":"))
            headers = {"Content-Type": "application/json", "User-Agent": outbound.user_agent()}
        else:
            body = notification_body(alert, row)
            headers = signed_headers(secret=alert.secret, msg_id=row.id, body=body)
        http_rows.append(row)
        requests.append((alert.target, body, headers))

    def finish(http_results: list[Result]) -> int:
        results = dict(zip((r.pk for r in http_rows), http_results, strict=True))
        for row in rows:
            if row.pk not in results:
                results[row.pk] = _email(alerts[row.alert_id], row)
        now = timezone.now()
        with transaction.atomic():
            for row in rows:
                once = row.kind == NotificationKind.TEST
                _record(AlertNotification, row, results[row.pk], retry=retry and not once, now=now, extra={})
        return sum(1 for r in results.values() if r.ok)

    return Sending(requests, finish)


def _email(alert: Alert, row: AlertNotification) -> Result:
    subject, text = _text(alert, row)
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [alert.target], fail_silently=False)
        return Result(True)
    except Exception as exc:  # any SMTP or backend error is a failed attempt, retried like HTTP
        logger.warning("alert %s: email failed: %s", alert.pk, exc)
        return Result(False, error=f"Email failed: {exc}")


def outbound_send_due() -> dict[str, int]:
    """Beat: everything due, both kinds."""
    return {"deliveries": deliveries_send(), "notifications": notifications_send()}


def outbound_claim_due() -> list[Sending]:
    """Everything due, both kinds, claimed and ready to send (a worker's send_due hands them to its conveyor)."""
    return [s for s in (deliveries_claim(), notifications_claim()) if s is not None]
