"""`GET /metrics`: internal Prometheus text."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.models import WebhookDelivery, WebhookSubscription
from jobs.models import Job, QueueMinuteStat

pytestmark = pytest.mark.django_db


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_IPS = []
    return settings


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic s3cret-token", "Bearer "])
def test_refused_without_token_or_address(anon_client, metrics_settings, auth):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    response = anon_client.get("/metrics", **headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


def test_empty_token_never_matches(anon_client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    response = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"


def test_workspace_api_key_is_not_enough(api_client, metrics_settings):
    response = api_client.get("/metrics")
    assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("allowed", [["127.0.0.1"], ["10.0.0.0/8", "127.0.0.0/8"]])
def test_allowed_address(anon_client, settings, allowed):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = allowed
    response = anon_client.get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200
    # A forged forwarded header does not grant access from elsewhere.
    settings.METRICS_ALLOWED_IPS = ["10.1.2.3"]
    assert anon_client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403


def test_metrics_content(anon_client, metrics_settings, pro_workspace, make_pull_queue):
    queue = make_pull_queue(pro_workspace, "emails")
    now = timezone.now()
    for state in ("waiting", "waiting", "delayed"):
        Job.objects.create(workspace=pro_workspace, queue=queue, state=state, run_at=now, created_at=now,
                           updated_at=now)
    QueueMinuteStat.objects.create(workspace=pro_workspace, queue=queue, minute=now.replace(second=0, microsecond=0),
                                   enqueued=7, completed=5, failed=2, timeout=1, duration_sum_ms=100,
                                   duration_count=7)
    sub = WebhookSubscription.objects.create(workspace=pro_workspace, url="http://127.0.0.1/x", events=["*"],
                                             secret="whsec_eA==")
    WebhookDelivery.objects.create(workspace=pro_workspace, subscription=sub, event_id="evt_1", event_type="job:failed",
                                   body="{}", status="failed")

    response = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    ws = pro_workspace.id
    expected = [
        "spindle_up 1",
        f'spindle_jobs{{workspace="{ws}",queue="emails",state="waiting"}} 2',
        f'spindle_jobs{{workspace="{ws}",queue="emails",state="delayed"}} 1',
        f'spindle_queues{{workspace="{ws}"}} 1',
        f'spindle_jobs_enqueued_total{{workspace="{ws}",queue="emails"}} 7',
        f'spindle_executions_total{{workspace="{ws}",queue="emails",outcome="completed"}} 5',
        f'spindle_executions_total{{workspace="{ws}",queue="emails",outcome="failed"}} 2',
        f'spindle_executions_total{{workspace="{ws}",queue="emails",outcome="timeout"}} 1',
        "spindle_webhook_deliveries_failed_total 1",
        "# TYPE spindle_executions_total counter",
    ]
    for line in expected:
        assert line in text.splitlines(), line
