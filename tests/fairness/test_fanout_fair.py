"""Issue 9 item 5: fan-out reads bounded batches and is fair across tenants: one workspace's huge backlog does
not delay another workspace's webhook deliveries beyond one pass."""

from __future__ import annotations

import pytest

from alerts.fanout import events_fanout
from alerts.models import WebhookDelivery, WebhookSubscription
from queues.events import PendingEvent, events_emit

pytestmark = pytest.mark.django_db

URL = "https://93.184.215.14/hooks"


def subscribe(workspace) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        workspace=workspace, url=URL, events=["job:failed"], secret="whsec_eA=="
    )


def emit(workspace, n: int) -> None:
    events_emit([PendingEvent(workspace.id, "job:failed", "q", f"job_{i}", {"attempt": 1}) for i in range(n)])


def test_backlog_of_one_workspace_does_not_delay_another(workspace, other_workspace_and_key):
    other = other_workspace_and_key[0]
    heavy, light = subscribe(workspace), subscribe(other)
    emit(workspace, 2500)  # older ids: an id-ordered batch of 1,000 would hold only these
    emit(other, 3)

    first = events_fanout(batch_size=1000, lag_s=0)

    assert first.events <= 1000  # bounded per pass
    assert WebhookDelivery.objects.filter(subscription=light).count() == 3
    assert WebhookDelivery.objects.filter(subscription=heavy).count() >= 900

    # Every event is still fanned out exactly once over the following passes.
    for _ in range(5):
        if events_fanout(batch_size=1000, lag_s=0).events == 0:
            break
    assert WebhookDelivery.objects.filter(subscription=heavy).count() == 2500
    assert WebhookDelivery.objects.filter(subscription=light).count() == 3
    assert events_fanout(batch_size=1000, lag_s=0).events == 0


def test_late_events_of_a_quiet_workspace_are_not_skipped(workspace, other_workspace_and_key):
    other = other_workspace_and_key[0]
    subscribe(workspace), subscribe(other)
    emit(workspace, 30)
    events_fanout(batch_size=10, lag_s=0)
    emit(other, 2)
    emit(workspace, 5)
    for _ in range(10):
        events_fanout(batch_size=10, lag_s=0)
    assert WebhookDelivery.objects.filter(workspace_id=workspace.id).count() == 35
    assert WebhookDelivery.objects.filter(workspace_id=other.id).count() == 2
