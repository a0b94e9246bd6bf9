"""Thin Celery tasks of the alerts app (beat entries in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from . import fanout, housekeeping, outbound


@shared_task(name="alerts.dispatch_events", ignore_result=True)
def dispatch_events() -> dict:
    """Beat, every second: fan out new outbox events (deliveries, alert evaluations). Safe to run twice at once."""
    return asdict(fanout.events_fanout())


@shared_task(name="alerts.send_notification", ignore_result=True)
def send_notification(notification_id: str) -> int:
    """One notification now (an alert's test message); a no-op if the due sweep already sent it."""
    return outbound.notifications_send(ids=[notification_id])


@shared_task(name="alerts.send_due", ignore_result=True)
def send_due() -> dict:
    """Beat, every second, and hinted after a fan-out: send due webhook deliveries and alert notifications."""
    return outbound.outbound_send_due()


# Named for billing, where it lived first: the beat entry (settings.CELERY_BEAT_SCHEDULE) refers to this name.
@shared_task(name="billing.apply_retention", ignore_result=True)
def apply_retention() -> dict[str, int]:
    """Hourly: delete what each plan no longer keeps, in bounded batches (alerts/housekeeping.py)."""
    return asdict(housekeeping.retention_apply())
