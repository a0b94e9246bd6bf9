"""`POST /v1/alerts/{id}/test` answers 202 without waiting for the target (issue 9, item 4): the message goes
through the alerts outbound queue, so a target that never answers cannot hold a web thread."""

from __future__ import annotations

import json
import threading

import pytest
from django.core import mail
from django.db import connection

from alerts import outbound, tasks
from alerts.models import AlertNotification


def _alert(client, channel: str, target: str) -> str:
    response = client.post("/v1/alerts", {"name": "t", "channel": channel, "target": target}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.django_db(transaction=True)
def test_tarpit_target_does_not_hold_the_request(api_client, private_targets, tarpit):
    alert_id = _alert(api_client, "webhook", tarpit.url)
    result: dict = {}

    def call() -> None:
        try:
            result["response"] = api_client.post(f"/v1/alerts/{alert_id}/test", format="json")
        finally:
            connection.close()  # this thread's own connection, so the test database can be dropped

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(5)
    # The target has not answered (it holds every request until released), yet the request is done.
    assert not caller.is_alive(), "the test request waited for the target"
    assert not tarpit.release.is_set()
    response = result["response"]
    assert response.status_code == 202, response.content
    assert response.json() == {"sent": True}
    notification = AlertNotification.objects.get(alert_id=alert_id)
    assert notification.kind == "test" and notification.status == "pending"


@pytest.mark.django_db
def test_queued_test_message_is_sent_by_the_sweep(api_client, private_targets, tarpit):
    tarpit.release.set()  # answers 200 at once
    alert_id = _alert(api_client, "slack", tarpit.url)
    assert api_client.post(f"/v1/alerts/{alert_id}/test", format="json").status_code == 202
    outbound.notifications_send()
    assert AlertNotification.objects.get(alert_id=alert_id).status == "success"


@pytest.mark.django_db
def test_failed_test_message_is_not_retried(api_client, private_targets):
    alert_id = _alert(api_client, "slack", "http://127.0.0.1:9/closed")
    assert api_client.post(f"/v1/alerts/{alert_id}/test", format="json").json() == {"sent": True}
    outbound.notifications_send()
    notification = AlertNotification.objects.get(alert_id=alert_id)
    assert notification.status == "failed" and notification.attempts == 1 and notification.error


@pytest.mark.django_db
def test_email_test_goes_out_on_the_sweep(api_client):
    alert_id = _alert(api_client, "email", "ops@example.com")
    assert api_client.post(f"/v1/alerts/{alert_id}/test", format="json").status_code == 202
    assert mail.outbox == []
    outbound.notifications_send()
    assert len(mail.outbox) == 1 and "test" in mail.outbox[0].subject
    assert json.loads(json.dumps(AlertNotification.objects.get(alert_id=alert_id).data))


@pytest.mark.django_db
def test_task_sends_it_once_and_skips_a_row_another_sender_holds(api_client, private_targets, tarpit):
    tarpit.release.set()
    alert_id = _alert(api_client, "slack", tarpit.url)
    api_client.post(f"/v1/alerts/{alert_id}/test", format="json")
    api_client.post(f"/v1/alerts/{alert_id}/test", format="json")
    first, second = AlertNotification.objects.filter(alert_id=alert_id).order_by("id")
    assert tasks.send_notification(first.id) == 1
    assert tasks.send_notification(first.id) == 0  # already sent: a repeated task is a no-op
    # Leased by a sweep that is still sending it: a task naming it must not send it a second time.
    outbound._claim(AlertNotification, [second.id], 1)
    assert tasks.send_notification(second.id) == 0
    assert AlertNotification.objects.get(pk=second.id).attempts == 1
