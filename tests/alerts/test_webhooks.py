from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from alerts.fanout import FanoutMark, events_fanout, id_floor
from alerts.models import FanoutCursor, WebhookDelivery, WebhookSubscription
from alerts.outbound import RETRY_DELAYS_S, deliveries_send
from queues.events import PendingEvent, event_to_dict, events_emit
from queues.models import Event
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db


def _subscribe(client, url, events=("job:failed",), **extra):
    response = client.post("/v1/webhooks", {"url": url, "events": list(events), **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _emit(workspace, type_="job:failed", queue="work", job_id="job_x"):
    events_emit([PendingEvent(workspace.id, type_, queue, job_id, {"attempt": 1})])
    return Event.objects.filter(workspace=workspace).order_by("-id").first()


def test_create_shape_and_secret_once(pro_client, private_targets, receiver):
    body = _subscribe(pro_client, receiver.url, ["job:failed", "queue:paused"], description="ops")
    assert body["id"].startswith("wh_")
    assert body["secret"].startswith("whsec_")
    assert {
        k: body[k] for k in ("url", "events", "enabled", "description", "failure_count", "last_failure_at")
    } == {
        "url": receiver.url,
        "events": ["job:failed", "queue:paused"],
        "enabled": True,
        "description": "ops",
        "failure_count": 0,
        "last_failure_at": None,
    }
    got = pro_client.get(f"/v1/webhooks/{body['id']}").json()
    assert "secret" not in got and got["id"] == body["id"]
    assert WebhookSubscription.objects.get(pk=body["id"]).secret == body["secret"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["job:exploded"]}, "events"),
        ({"events": ["*", "job:failed"]}, "events"),
        ({"events": []}, "events"),
        ({"events": "job:failed"}, "events"),
        ({"url": "ftp://x.example/"}, "url"),
        ({"enabled": 1}, "enabled"),
        ({"secret": "whsec_x"}, "secret"),
        ({"failure_count": 3}, "failure_count"),
        ({"extra": True}, "extra"),
    ],
)
def test_create_validation(pro_client, private_targets, receiver, body, field):
    response = pro_client.post("/v1/webhooks", {"url": receiver.url, "events": ["*"], **body}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert WebhookSubscription.objects.count() == 0


def test_loopback_url_refused_by_default(pro_client, settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = False
    response = pro_client.post(
        "/v1/webhooks", {"url": "http://127.0.0.1:8/x", "events": ["*"]}, format="json"
    )
    assert response.status_code == 400 and "url" in response.json()["error"]["details"]


def test_patch_list_delete(pro_client, private_targets, receiver):
    sub = _subscribe(pro_client, receiver.url)
    url = f"/v1/webhooks/{sub['id']}"
    patched = pro_client.patch(url, {"events": ["*"], "enabled": False}, format="json")
    assert (
        patched.status_code == 200
        and patched.json()["events"] == ["*"]
        and patched.json()["enabled"] is False
    )
    bad = pro_client.patch(url, {"events": ["nope"]}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert WebhookSubscription.objects.get(pk=sub["id"]).events == ["*"]
    assert [w["id"] for w in pro_client.get("/v1/webhooks").json()["data"]] == [sub["id"]]
    assert pro_client.delete(url).status_code == 204
    assert pro_client.get(url).status_code == 404
    assert not WebhookSubscription.objects.filter(pk=sub["id"]).exists()


def test_other_workspace_404(pro_client, other_workspace_client, private_targets, receiver):
    sub = _subscribe(pro_client, receiver.url)
    url = f"/v1/webhooks/{sub['id']}"
    for response in (
        other_workspace_client.get(url),
        other_workspace_client.patch(url, {"enabled": False}, format="json"),
        other_workspace_client.delete(url),
        other_workspace_client.get(f"{url}/deliveries"),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    assert other_workspace_client.get("/v1/webhooks").json()["data"] == []
    assert WebhookSubscription.objects.get(pk=sub["id"]).enabled is True


def test_fanout_delivers_matching_events_signed(
    pro_client, pro_workspace, workspace, private_targets, receiver
):
    sub = _subscribe(pro_client, receiver.url, ["job:failed"])
    failed = _emit(pro_workspace, "job:failed")
    _emit(pro_workspace, "job:completed")
    _emit(workspace, "job:failed")  # another workspace's event
    result = events_fanout(lag_s=0)
    assert result.deliveries == 1
    # A repeated run (a retried task, a second beat) creates nothing more.
    FanoutCursor.objects.update(position="")
    FanoutMark.objects.all().delete()
    assert events_fanout(lag_s=0).deliveries == 0
    assert WebhookDelivery.objects.count() == 1

    assert deliveries_send() == 1
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    headers = {k.lower(): v for k, v in req.headers.items()}
    payload = Webhook(sub["secret"]).verify(req.body, headers)
    assert payload == event_to_dict(failed)
    assert set(payload) == {"id", "type", "queue", "job_id", "data", "created_at"}
    assert headers["webhook-id"] == failed.id

    listed = pro_client.get(f"/v1/webhooks/{sub['id']}/deliveries").json()
    assert len(listed["data"]) == 1 and listed["next_cursor"] is None
    row = listed["data"][0]
    assert (row["event_id"], row["event_type"], row["status"], row["attempts"], row["response_status"]) == (
        failed.id,
        "job:failed",
        "success",
        1,
        200,
    )


def test_star_subscription_and_disabled_subscription(pro_client, pro_workspace, private_targets, receiver):
    star = _subscribe(pro_client, receiver.url, ["*"])
    off = _subscribe(pro_client, receiver.url, ["*"], enabled=False)
    _emit(pro_workspace, "queue:paused")
    _emit(pro_workspace, "job:waiting")
    events_fanout(lag_s=0)
    assert WebhookDelivery.objects.filter(subscription_id=star["id"]).count() == 2
    assert WebhookDelivery.objects.filter(subscription_id=off["id"]).count() == 0


def test_retry_schedule_then_failed(pro_client, pro_workspace, private_targets, receiver):
    receiver.statuses = [500]
    sub = _subscribe(pro_client, receiver.url)
    _emit(pro_workspace)
    events_fanout(lag_s=0)
    delivery = WebhookDelivery.objects.get()
    waits = []
    for attempt in range(1, 7):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )
        before = timezone.now()
        assert deliveries_send() == 0
        delivery.refresh_from_db()
        assert delivery.attempts == attempt and delivery.response_status == 500
        if attempt < 6:
            assert delivery.status == "pending"
            waits.append(round((delivery.next_attempt_at - before).total_seconds()))
        # Not due again until its time: a sweep right now sends nothing.
        assert deliveries_send() == 0
    assert waits == list(RETRY_DELAYS_S)
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    assert len(receiver.requests) == 6
    # All attempts of one delivery carry the same webhook-id (receivers deduplicate on it).
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    subscription = WebhookSubscription.objects.get(pk=sub["id"])
    assert subscription.failure_count == 1 and subscription.last_failure_at is not None
    shown = pro_client.get(f"/v1/webhooks/{sub['id']}").json()
    assert shown["failure_count"] == 1 and shown["last_failure_at"] is not None


def test_recovers_on_retry(pro_client, pro_workspace, private_targets, receiver):
    receiver.statuses = [503, 200]
    _subscribe(pro_client, receiver.url)
    _emit(pro_workspace)
    events_fanout(lag_s=0)
    deliveries_send()
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliveries_send() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("success", 2)
    assert WebhookSubscription.objects.get().failure_count == 0


def test_refused_address_is_a_failed_attempt(pro_client, pro_workspace, private_targets, receiver, settings):
    _subscribe(pro_client, receiver.url)
    _emit(pro_workspace)
    events_fanout(lag_s=0)
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = False  # the guard runs again at send time
    assert deliveries_send() == 0
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1 and "refused" in delivery.error
    assert receiver.requests == []


def test_late_committed_event_is_still_delivered_once(pro_client, pro_workspace, private_targets, receiver):
    """An event whose id is older than ones already fanned out (its transaction committed late) is not skipped."""
    sub = _subscribe(pro_client, receiver.url)
    WebhookSubscription.objects.filter(pk=sub["id"]).update(created_at=timezone.now() - timedelta(minutes=1))
    first = _emit(pro_workspace)
    assert events_fanout(lag_s=10).deliveries == 1
    # Its id says "3 s ago": emitted before `first`, committed after it.
    late_id = id_floor("evt", timezone.now() - timedelta(seconds=3))[:-1] + "1"
    Event.objects.create(
        id=late_id,
        workspace=pro_workspace,
        type="job:failed",
        queue_name="work",
        job_id="job_late",
        created_at=timezone.now(),
    )
    assert late_id < first.id
    assert events_fanout(lag_s=10).deliveries == 1
    assert events_fanout(lag_s=10).deliveries == 0
    assert sorted(WebhookDelivery.objects.values_list("event_id", flat=True)) == sorted([first.id, late_id])


def test_subscription_does_not_get_events_from_before_it(
    pro_client, pro_workspace, private_targets, receiver
):
    _emit(pro_workspace)
    sub = _subscribe(pro_client, receiver.url)
    WebhookSubscription.objects.filter(pk=sub["id"]).update(
        created_at=timezone.now() + timedelta(milliseconds=5)
    )
    events_fanout(lag_s=10)
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_fanouts_at_once_deliver_each_event_once(plans, private_targets, receiver):
    from accounts.services import workspace_create
    from tests.conftest import make_client

    workspace, key = workspace_create(name="t", plan_code="team")
    _subscribe(make_client(key.raw), receiver.url, ["*"])
    events_emit([PendingEvent(workspace.id, "job:failed", "work", f"job_{i}", {}) for i in range(300)])
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        for _ in range(3):
            events_fanout(lag_s=0, batch_size=100)

    assert run_in_threads(run, 4) == []
    events_fanout(lag_s=0, batch_size=1000)
    assert WebhookDelivery.objects.count() == 300
    assert len(set(WebhookDelivery.objects.values_list("event_id", flat=True))) == 300
    body = json.loads(WebhookDelivery.objects.order_by("id").first().body)
    assert body["type"] == "job:failed"
