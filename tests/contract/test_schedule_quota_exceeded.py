"""A schedule tick refused by the monthly quota is recorded as a `quota_exceeded` execution (API.md Executions),
not skipped silently; the schedule still advances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Plan
from jobs.models import Execution, Job
from schedules import services
from schedules.models import Schedule, ScheduleTick

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_refused_tick_writes_quota_exceeded_execution(api_client, workspace, pull_queue, plans):
    schedule = services.schedule_create(
        workspace=workspace, data={"name": "every-second", "queue": "work", "interval_ms": 1000}, now=T0
    )
    Plan.objects.filter(code="free").update(jobs_per_month=0)

    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 0
    assert not Job.objects.exists()
    schedule.refresh_from_db()
    assert schedule.next_run_at == T0 + timedelta(seconds=2)
    assert ScheduleTick.objects.get(schedule=schedule).job_id is None

    response = api_client.get("/v1/executions?status=quota_exceeded&schedule=every-second")
    assert response.status_code == 200, response.content
    [execution] = response.json()["data"]
    assert execution["status"] == "quota_exceeded"
    assert execution["schedule"] == "every-second"
    assert execution["queue"] == "work"
    assert execution["job_id"] is None
    assert execution["error"]["type"] == "quota_exceeded"
    assert execution["completed_at"] is not None

    # The next refused tick writes one more; a retried run of the same tick writes nothing.
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 0
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=2)) == 0
    assert Execution.objects.filter(status="quota_exceeded", schedule_id=schedule.id).count() == 2
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == T0 + timedelta(seconds=3)


@pytest.mark.django_db
def test_other_workspace_does_not_see_it(api_client, other_workspace_client, workspace, pull_queue, plans):
    services.schedule_create(
        workspace=workspace, data={"name": "s", "queue": "work", "interval_ms": 1000}, now=T0
    )
    Plan.objects.filter(code="free").update(jobs_per_month=0)
    services.schedules_fire_due(now=T0 + timedelta(seconds=1))
    assert len(api_client.get("/v1/executions?status=quota_exceeded").json()["data"]) == 1
    assert other_workspace_client.get("/v1/executions?status=quota_exceeded").json()["data"] == []


@pytest.mark.django_db
def test_replaying_a_refused_tick_says_why(api_client, workspace, pull_queue, plans):
    services.schedule_create(
        workspace=workspace, data={"name": "s", "queue": "work", "interval_ms": 1000}, now=T0
    )
    Plan.objects.filter(code="free").update(jobs_per_month=0)
    services.schedules_fire_due(now=T0 + timedelta(seconds=1))
    execution = Execution.objects.get(status="quota_exceeded")

    response = api_client.post(f"/v1/executions/{execution.id}/replay", format="json")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "INVALID_STATE"
    assert error["details"] == {"state": "quota_exceeded"}
    assert "trigger" in error["message"].lower()
    assert not Job.objects.exists()
