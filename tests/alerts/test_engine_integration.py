"""The real engine writes the events: a push job that fails at its endpoint fires the alert and the webhook."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from standardwebhooks import Webhook

from alerts.fanout import events_fanout
from alerts.models import AlertNotification, WebhookDelivery
from alerts.outbound import outbound_send_due
from jobs.tasks import deliver_queue
from queues.models import Queue

pytestmark = pytest.mark.django_db


def test_failed_push_job_fires_alert_and_webhook(pro_client, private_targets, receiver):
    endpoint = receiver.url.replace("/hook", "/job")
    receiver.statuses = [500, 200]  # the job's attempt fails; the webhook delivery succeeds
    created = pro_client.post(
        "/v1/queues",
        {"name": "emails", "endpoint": {"url": endpoint}, "retry_policy": {"max_attempts": 1}},
        format="json",
    )
    assert created.status_code == 201, created.content
    alert = pro_client.post(
        "/v1/alerts",
        {"name": "ops", "channel": "email", "target": "ops@example.com", "queue": "emails"},
        format="json",
    ).json()
    hook = pro_client.post(
        "/v1/webhooks", {"url": receiver.url, "events": ["job:dead"]}, format="json"
    ).json()
    job = pro_client.post("/v1/queues/emails/jobs", {"payload": {"to": "a@b.c"}}, format="json").json()

    deliver_queue(Queue.objects.get(name="emails").id)
    assert pro_client.get(f"/v1/queues/emails/jobs/{job['id']}").json()["state"] == "failed"

    result = events_fanout(lag_s=0)
    assert result.deliveries == 1 and result.notifications == 1
    assert AlertNotification.objects.get().alert_id == alert["id"]
    outbound_send_due()
    assert len(mail.outbox) == 1 and "queue 'emails'" in mail.outbox[0].body
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "success"
    sent = receiver.requests[-1]
    payload = Webhook(hook["secret"]).verify(sent.body, {k.lower(): v for k, v in sent.headers.items()})
    assert payload["type"] == "job:dead" and payload["job_id"] == job["id"] and payload["queue"] == "emails"
    assert json.loads(delivery.body) == payload
