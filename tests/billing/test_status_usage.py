from datetime import UTC, datetime

import pytest
from django.utils import timezone

from billing.services import quota_consume
from queues.models import QueueMinuteStat
from tests.billing.test_rate_limits import fresh_window
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db


def test_status(workspace, api_client):
    fresh_window(workspace.id)
    quota_consume(workspace=workspace, count=7)
    response = api_client.get("/v1/status")
    assert response.status_code == 200, response.content
    body = response.json()
    now = timezone.now()
    next_month = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert body == {
        "status": "ok",
        "workspace": {"id": workspace.id, "name": "acme", "plan": "free"},
        "quota": {
            "jobs": {"used": 7, "limit": 10_000, "resets_at": next_month.isoformat().replace("+00:00", "Z")}
        },
        "rate_limit": {"limit": 60, "remaining": 59},
    }
    assert api_client.get("/v1/status").json()["rate_limit"]["remaining"] == 58


def test_status_needs_auth(anon_client, plans):
    response = anon_client.get("/v1/status")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def _stat(workspace, queue, minute, **counts):
    return QueueMinuteStat.objects.create(workspace=workspace, queue=queue, minute=minute, **counts)


def test_usage_from_counters_and_rollups(
    workspace, api_client, other_workspace_and_key, django_assert_max_num_queries
):
    emails = QueueFactory(workspace=workspace, name="emails", delivery="push")
    reports = QueueFactory(workspace=workspace, name="reports", delivery="push")
    other_queue = QueueFactory(workspace=other_workspace_and_key[0], name="emails", delivery="push")
    _stat(
        workspace,
        emails,
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
        enqueued=10,
        completed=8,
        failed=1,
        timeout=1,
    )
    _stat(workspace, emails, datetime(2026, 3, 1, 0, 1, tzinfo=UTC), enqueued=5, completed=5)
    _stat(workspace, reports, datetime(2026, 3, 31, 23, 59, tzinfo=UTC), enqueued=2, completed=1, failed=1)
    _stat(
        workspace, emails, datetime(2026, 4, 1, 0, 0, tzinfo=UTC), enqueued=100, completed=100
    )  # next month
    _stat(
        workspace, emails, datetime(2026, 2, 28, 23, 59, tzinfo=UTC), enqueued=100, completed=100
    )  # last month
    _stat(
        other_workspace_and_key[0], other_queue, datetime(2026, 3, 2, tzinfo=UTC), enqueued=50, completed=50
    )
    quota_consume(workspace=workspace, count=17, now=datetime(2026, 3, 15, tzinfo=UTC))

    with django_assert_max_num_queries(8):
        response = api_client.get("/v1/usage?period=2026-03")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
    assert body["jobs_enqueued"] == 17
    assert body["executions"] == {"total": 17, "success": 14, "failed": 2, "timeout": 1}
    assert body["by_queue"] == [
        {"queue": "emails", "enqueued": 15, "total": 15, "success": 13, "failed": 1, "timeout": 1},
        {"queue": "reports", "enqueued": 2, "total": 2, "success": 1, "failed": 1, "timeout": 0},
    ]
    assert len(body["by_day"]) == 31
    assert body["by_day"][0] == {
        "date": "2026-03-01",
        "enqueued": 15,
        "total": 15,
        "success": 13,
        "failed": 1,
        "timeout": 1,
    }
    assert body["by_day"][1]["total"] == 0
    assert body["by_day"][30]["date"] == "2026-03-31" and body["by_day"][30]["success"] == 1


def test_usage_defaults_to_this_month(workspace, api_client):
    quota_consume(workspace=workspace, count=3)
    body = api_client.get("/v1/usage").json()
    now = timezone.now()
    assert body["period"]["start"] == f"{now:%Y-%m}-01T00:00:00Z"
    assert body["jobs_enqueued"] == 3
    assert body["executions"] == {"total": 0, "success": 0, "failed": 0, "timeout": 0}
    assert body["by_queue"] == []
    assert body["by_day"][-1]["date"] == now.date().isoformat()


@pytest.mark.parametrize("period", ["2026-13", "2026-3", "March", "2026-03-01", "1999-12", "2026-00"])
def test_usage_bad_period_is_400(api_client, period):
    response = api_client.get(f"/v1/usage?period={period}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert "period" in response.json()["error"]["details"]
