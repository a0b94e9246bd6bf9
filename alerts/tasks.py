"""Thin Celery tasks of the alerts app (beat entries in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from jobs.services import conveyor

from . import fanout, housekeeping, outbound


@shared_task(name="alerts.dispatch_events", ignore_result=True)
def dispatch_events() -> dict:
    """Beat, every second: fan out new outbox events (deliveries, alert evaluations). Safe to run twice at once."""
    return asdict(fanout.events_fanout())


@shared_task(name="alerts.send_notification", ignore_result=True, bind=True)
def send_notification(self, notification_id: str) -> int:
    """One notification now (an alert's test message); a no-op if the due sweep already sent it."""
    if _in_process(self):
        return outbound.notifications_send(ids=[notification_id])
    return _hand_over([outbound.notifications_claim(ids=[notification_id])])


@shared_task(name="alerts.send_due", ignore_result=True, bind=True)
def send_due(self) -> dict:
    """Beat, every second, and hinted after a fan-out: send due webhook deliveries and alert notifications.

    In a worker the task only claims the rows: the requests go out on the process's conveyor loop and the
    results are recorded on its recorder thread, so a slow target never holds the system thread (the sweeper's
    and the ticker's)."""
    if _in_process(self):
        return outbound.outbound_send_due()
    return {"claimed": _hand_over(outbound.outbound_claim_due())}


def _in_process(task) -> bool:
    """Called directly or eagerly (tests, a shell): send and record before returning, as before."""
    return bool(task.request.called_directly or task.request.is_eager)


def _hand_over(sendings: list[outbound.Sending | None]) -> int:
    carrier = conveyor.conveyor()
    claimed = 0
    for sending in sendings:
        if sending is None:
            continue
        claimed += len(sending.requests)
        carrier.carry(outbound.send_many(sending.requests), sending.finish, "alerts")
    return claimed


# Named for billing, where it lived first: the beat entry (settings.CELERY_BEAT_SCHEDULE) refers to this name.
@shared_task(name="billing.apply_retention", ignore_result=True)
def apply_retention() -> dict[str, int]:
    """Hourly: delete what each plan no longer keeps, in bounded batches (alerts/housekeeping.py)."""
    return asdict(housekeeping.retention_apply())
