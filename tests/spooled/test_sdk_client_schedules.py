"""The SDK's schedules and outgoing-webhooks calls against a live server."""

from __future__ import annotations

import pytest

from alerts.fanout import events_fanout
from alerts.models import WebhookDelivery
from jobs.models import Job
from tests.endpoints import recording_endpoint
from tests.spooled.sdk_alias import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
errors = sdk.errors


def test_schedule_crud_trigger_history(spooled_client) -> None:
    created = spooled_client.schedules.create(
        {
            "name": "nightly",
            "cron_expression": "0 3 * * *",
            "queue_name": "reports",
            "payload_template": {"kind": "nightly"},
            "max_retries": 2,
            "timeout_seconds": 120,
        }
    )
    assert created.next_run_at is not None
    schedule = spooled_client.schedules.get(created.id)
    assert (
        schedule.cron_expression,
        schedule.queue_name,
        schedule.max_retries,
        schedule.timeout_seconds,
    ) == (
        "0 3 * * *",
        "reports",
        2,
        120,
    )
    assert [s.id for s in spooled_client.schedules.list()] == [created.id]
    triggered = spooled_client.schedules.trigger(created.id)
    job = Job.objects.get(id=triggered.job_id)
    assert (job.payload, job.schedule_id, job.queue.delivery) == ({"kind": "nightly"}, created.id, "pull")
    assert [run.job_id for run in spooled_client.schedules.get_history(created.id)] == [triggered.job_id]
    assert spooled_client.schedules.get(created.id).run_count == 1
    updated = spooled_client.schedules.update(created.id, {"cron_expression": "*/5 * * * *", "priority": 9})
    assert (updated.cron_expression, updated.priority) == ("*/5 * * * *", 9)
    assert spooled_client.schedules.pause(created.id).is_active is False
    assert spooled_client.schedules.resume(created.id).is_active is True
    with pytest.raises(errors.ValidationError):
        spooled_client.schedules.create(
            {"name": "bad", "cron_expression": "not cron", "queue_name": "reports", "payload_template": {}}
        )
    spooled_client.schedules.delete(created.id)
    with pytest.raises(errors.NotFoundError):
        spooled_client.schedules.get(created.id)


def test_outgoing_webhook_test_deliveries_retry(spooled_client) -> None:
    with recording_endpoint() as endpoint:
        hook = spooled_client.webhooks.create(
            {"name": "ops", "url": endpoint.url, "events": ["job.completed", "job.deadlettered"]}
        )
        assert (hook.name, sorted(hook.events)) == ("ops", ["job.completed", "job.deadlettered"])
        ping = spooled_client.webhooks.test(hook.id)
        assert ping.success and ping.status_code == 200
        assert len(endpoint.requests) == 1
        with pytest.raises(errors.ValidationError):
            spooled_client.webhooks.create(
                {"name": "w", "url": endpoint.url, "events": ["worker.registered"]}
            )
        job_id = spooled_client.jobs.create({"queue_name": "hooked", "payload": {}}).id
        worker = spooled_client.workers.register({"queue_name": "hooked", "hostname": "h"})
        lease = spooled_client.jobs.claim({"queue_name": "hooked", "worker_id": worker.id}).jobs[0].lease_id
        spooled_client.jobs.complete(job_id, {"worker_id": worker.id, "lease_id": lease})
        events_fanout(lag_s=0)  # the Celery beat's job, run here: events -> deliveries
        delivery = WebhookDelivery.objects.get(subscription_id=hook.id)
        listed = spooled_client.webhooks.get_deliveries(hook.id)
        assert [(d.id, d.event, d.status) for d in listed] == [(delivery.id, "job.completed", "pending")]
        retried = spooled_client.webhooks.retry_delivery(hook.id, delivery.id)
        assert retried.success is True
        assert spooled_client.webhooks.get_deliveries(hook.id)[0].status == "success"
        assert len(endpoint.requests) == 2
        spooled_client.webhooks.update(hook.id, {"enabled": False})
        assert spooled_client.webhooks.get(hook.id).enabled is False
        spooled_client.webhooks.delete(hook.id)
        assert list(spooled_client.webhooks.list()) == []
