from __future__ import annotations

import json

import pytest
from django.core import mail
from standardwebhooks import Webhook

from alerts.models import Alert, AlertNotification
from alerts.outbound import notifications_send
from tests.factories import ScheduleFactory, make_queue

pytestmark = pytest.mark.django_db

EMAIL = {"name": "ops", "channel": "email", "target": "ops@example.com"}


def test_create_email_alert_full_shape(pro_client, pro_workspace, private_targets):
    response = pro_client.post("/v1/alerts", EMAIL, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("alr_")
    assert "secret" not in body
    assert {
        k: body[k]
        for k in (
            "name",
            "channel",
            "target",
            "queue",
            "schedule",
            "consecutive_failures_threshold",
            "cooldown_minutes",
            "enabled",
            "last_fired_at",
        )
    } == {
        "name": "ops",
        "channel": "email",
        "target": "ops@example.com",
        "queue": None,
        "schedule": None,
        "consecutive_failures_threshold": 1,
        "cooldown_minutes": 60,
        "enabled": True,
        "last_fired_at": None,
    }
    alert = Alert.objects.get(pk=body["id"])
    assert alert.workspace_id == pro_workspace.id and alert.secret == ""


def test_webhook_alert_secret_only_once(pro_client, private_targets, receiver):
    response = pro_client.post(
        "/v1/alerts", {"name": "hook", "channel": "webhook", "target": receiver.url}, format="json"
    )
    assert response.status_code == 201, response.content
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    alert_id = response.json()["id"]
    assert Alert.objects.get(pk=alert_id).secret == secret
    for got in (
        pro_client.get(f"/v1/alerts/{alert_id}").json(),
        pro_client.get("/v1/alerts").json()["data"][0],
        pro_client.patch(f"/v1/alerts/{alert_id}", {"name": "x"}, format="json").json(),
    ):
        assert "secret" not in got and secret not in json.dumps(got)


def test_scoped_alert_with_queue_and_schedule(pro_client, pro_workspace, private_targets):
    queue = make_queue(pro_workspace, "emails")
    ScheduleFactory(queue=queue, name="nightly")
    body = {
        **EMAIL,
        "queue": "emails",
        "schedule": "nightly",
        "consecutive_failures_threshold": 3,
        "cooldown_minutes": 5,
        "enabled": False,
    }
    response = pro_client.post("/v1/alerts", body, format="json")
    assert response.status_code == 201, response.content
    got = response.json()
    assert (
        got["queue"],
        got["schedule"],
        got["consecutive_failures_threshold"],
        got["cooldown_minutes"],
        got["enabled"],
    ) == ("emails", "nightly", 3, 5, False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**EMAIL, "target": "not-an-email"}, "target"),
        ({**EMAIL, "channel": "sms"}, "channel"),
        ({**EMAIL, "channel": "slack", "target": "ftp://example.com/x"}, "target"),
        ({**EMAIL, "consecutive_failures_threshold": 0}, "consecutive_failures_threshold"),
        ({**EMAIL, "consecutive_failures_threshold": "3"}, "consecutive_failures_threshold"),
        ({**EMAIL, "cooldown_minutes": -1}, "cooldown_minutes"),
        ({**EMAIL, "enabled": "yes"}, "enabled"),
        ({**EMAIL, "queue": "nope"}, "queue"),
        ({**EMAIL, "schedule": "nope"}, "schedule"),
        ({**EMAIL, "bogus": 1}, "bogus"),
        ({**EMAIL, "id": "alr_x"}, "id"),
        ({**EMAIL, "last_fired_at": None}, "last_fired_at"),
        ({"channel": "email", "target": "a@example.com"}, "name"),
    ],
)
def test_create_validation(pro_client, private_targets, body, field):
    response = pro_client.post("/v1/alerts", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert Alert.objects.count() == 0


def test_loopback_target_refused_without_private_setting(pro_client, settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = False
    response = pro_client.post(
        "/v1/alerts", {"name": "s", "channel": "slack", "target": "http://127.0.0.1:9/x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "target" in response.json()["error"]["details"]
    assert Alert.objects.count() == 0


def test_form_body_is_415(pro_client):
    response = pro_client.post("/v1/alerts", {"name": "x"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_plan_cap_is_402(api_client, workspace):
    # free plan: 1 alert
    assert api_client.post("/v1/alerts", EMAIL, format="json").status_code == 201
    response = api_client.post("/v1/alerts", {**EMAIL, "name": "second"}, format="json")
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "PLAN_LIMIT"
    assert error["details"]["limit"] == 1 and error["details"]["plan"] == "free"
    assert Alert.objects.filter(workspace=workspace).count() == 1


def test_put_replaces_and_patch_merges(pro_client, private_targets, receiver):
    created = pro_client.post(
        "/v1/alerts", {**EMAIL, "cooldown_minutes": 5, "consecutive_failures_threshold": 4}, format="json"
    ).json()
    url = f"/v1/alerts/{created['id']}"
    patched = pro_client.patch(url, {"cooldown_minutes": 7}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["cooldown_minutes"] == 7 and patched.json()["consecutive_failures_threshold"] == 4

    # PUT without the optional fields puts them back to their defaults.
    put = pro_client.put(url, {"name": "ops2", "channel": "email", "target": "b@example.com"}, format="json")
    assert put.status_code == 200, put.content
    assert (
        put.json()["name"],
        put.json()["cooldown_minutes"],
        put.json()["consecutive_failures_threshold"],
    ) == ("ops2", 60, 1)
    # PUT needs the required fields.
    bad = pro_client.put(url, {"name": "x"}, format="json")
    assert bad.status_code == 400 and {"channel", "target"} <= set(bad.json()["error"]["details"])

    # Switching to the webhook channel mints a secret, shown once.
    switched = pro_client.patch(url, {"channel": "webhook", "target": receiver.url}, format="json")
    assert switched.status_code == 200
    assert switched.json()["secret"].startswith("whsec_")
    assert Alert.objects.get(pk=created["id"]).secret == switched.json()["secret"]
    # The channel/target pair is checked together.
    mismatch = pro_client.patch(url, {"channel": "email"}, format="json")
    assert mismatch.status_code == 400 and "target" in mismatch.json()["error"]["details"]
    assert Alert.objects.get(pk=created["id"]).channel == "webhook"


def test_delete(pro_client, private_targets):
    alert_id = pro_client.post("/v1/alerts", EMAIL, format="json").json()["id"]
    assert pro_client.delete(f"/v1/alerts/{alert_id}").status_code == 204
    assert not Alert.objects.filter(pk=alert_id).exists()
    response = pro_client.get(f"/v1/alerts/{alert_id}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


def test_list_paginates_newest_first(pro_client, private_targets):
    ids = [
        pro_client.post("/v1/alerts", {**EMAIL, "name": f"a{i}"}, format="json").json()["id"]
        for i in range(3)
    ]
    page = pro_client.get("/v1/alerts?limit=2").json()
    assert [a["id"] for a in page["data"]] == ids[::-1][:2]
    rest = pro_client.get(f"/v1/alerts?limit=2&cursor={page['next_cursor']}").json()
    assert [a["id"] for a in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    assert pro_client.get("/v1/alerts?limit=1001").json()["error"]["code"] == "BAD_REQUEST"


def test_other_workspace_gets_404_everywhere(pro_client, other_workspace_client, private_targets):
    alert_id = pro_client.post("/v1/alerts", EMAIL, format="json").json()["id"]
    url = f"/v1/alerts/{alert_id}"
    for response in (
        other_workspace_client.get(url),
        other_workspace_client.patch(url, {"name": "x"}, format="json"),
        other_workspace_client.put(url, EMAIL, format="json"),
        other_workspace_client.delete(url),
        other_workspace_client.post(f"{url}/test", format="json"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert other_workspace_client.get("/v1/alerts").json()["data"] == []
    assert Alert.objects.get(pk=alert_id).name == "ops"
    assert AlertNotification.objects.count() == 0


def test_no_key_is_401(anon_client):
    response = anon_client.get("/v1/alerts")
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"


def test_test_email(pro_client, private_targets):
    alert_id = pro_client.post("/v1/alerts", EMAIL, format="json").json()["id"]
    response = pro_client.post(f"/v1/alerts/{alert_id}/test", format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"sent": True}
    # Sent off the request (a task, or the due sweep run here).
    assert mail.outbox == []
    notifications_send()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"] and "test" in mail.outbox[0].subject
    assert AlertNotification.objects.get(alert_id=alert_id).status == "success"


def test_test_slack_posts_text(pro_client, private_targets, receiver):
    alert_id = pro_client.post(
        "/v1/alerts", {"name": "s", "channel": "slack", "target": receiver.url}, format="json"
    ).json()["id"]
    response = pro_client.post(f"/v1/alerts/{alert_id}/test", format="json")
    assert response.status_code == 202 and response.json() == {"sent": True}
    notifications_send()
    assert len(receiver.requests) == 1
    assert set(json.loads(receiver.requests[0].body)) == {"text"}


def test_test_webhook_is_signed(pro_client, private_targets, receiver):
    created = pro_client.post(
        "/v1/alerts", {"name": "w", "channel": "webhook", "target": receiver.url}, format="json"
    ).json()
    response = pro_client.post(f"/v1/alerts/{created['id']}/test", format="json")
    assert response.status_code == 202 and response.json() == {"sent": True}
    notifications_send()
    req = receiver.requests[0]
    payload = Webhook(created["secret"]).verify(req.body, {k.lower(): v for k, v in req.headers.items()})
    assert payload["type"] == "alert:test" and payload["alert"]["id"] == created["id"]


def test_test_reports_failure(pro_client, private_targets, receiver):
    receiver.statuses = [500]
    alert_id = pro_client.post(
        "/v1/alerts", {"name": "s", "channel": "slack", "target": receiver.url}, format="json"
    ).json()["id"]
    response = pro_client.post(f"/v1/alerts/{alert_id}/test", format="json")
    assert response.status_code == 202 and response.json() == {"sent": True}
    notifications_send()
    # A test message is not retried; the outcome is on the notification.
    notification = AlertNotification.objects.get(alert_id=alert_id)
    assert notification.status == "failed" and "500" in notification.error and notification.attempts == 1
