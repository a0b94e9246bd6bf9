"""Issue 9 item 7: every re-run (queue retry, DLQ retry, single job retry) consumes one unit of the monthly
job quota; over quota is 402 QUOTA_EXCEEDED and nothing changes (all or nothing for bulk retries)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Plan
from billing.models import UsageCounter
from billing.services import current_period
from jobs.models import Job
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_quota(workspace):
    Plan.objects.filter(code=workspace.plan_id).update(jobs_per_month=5)
    workspace.refresh_from_db()
    return workspace


def used(workspace) -> int:
    row = UsageCounter.objects.filter(workspace=workspace, period=current_period()).first()
    return row.jobs_enqueued if row else 0


def set_used(workspace, n: int) -> None:
    UsageCounter.objects.update_or_create(
        workspace=workspace, period=current_period(), defaults={"jobs_enqueued": n}
    )


def failed_jobs(queue, n: int) -> list[Job]:
    return insert_jobs(queue, n, state="failed", attempts=4, finished_at=timezone.now())


def test_single_job_retry_consumes_quota(api_client, make_queue, tiny_quota):
    q = make_queue("q")
    a, b = failed_jobs(q, 2)
    set_used(tiny_quota, 4)

    ok = api_client.post(f"/v1/queues/q/jobs/{a.id}/retry")
    assert ok.status_code == 200, ok.content
    assert used(tiny_quota) == 5

    refused = api_client.post(f"/v1/queues/q/jobs/{b.id}/retry")
    assert refused.status_code == 402, refused.content
    assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert Job.objects.get(pk=b.id).state == "failed"
    assert used(tiny_quota) == 5


def test_queue_retry_is_all_or_nothing(api_client, make_queue, tiny_quota):
    q = make_queue("q")
    jobs = failed_jobs(q, 3)
    set_used(tiny_quota, 3)

    refused = api_client.post("/v1/queues/q/retry", {"state": "failed"}, format="json")
    assert refused.status_code == 402, refused.content
    assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert Job.objects.filter(id__in=[j.id for j in jobs], state="failed").count() == 3
    assert used(tiny_quota) == 3

    set_used(tiny_quota, 2)
    ok = api_client.post("/v1/queues/q/retry", {"state": "failed"}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["affected"] == 3
    assert used(tiny_quota) == 5


def test_dlq_retry_consumes_quota_for_the_jobs_it_reruns(api_client, make_queue, tiny_quota):
    q = make_queue("q")
    a, b, c = failed_jobs(q, 3)
    set_used(tiny_quota, 3)

    refused = api_client.post("/v1/queues/q/dlq/retry", {}, format="json")
    assert refused.status_code == 402, refused.content
    assert Job.objects.filter(queue=q, state="failed").count() == 3

    # Only the listed ids that really are failed are counted (an unknown id costs nothing).
    ok = api_client.post("/v1/queues/q/dlq/retry", {"ids": [a.id, b.id, "job_unknown"]}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["affected"] == 2
    assert used(tiny_quota) == 5
    assert Job.objects.get(pk=c.id).state == "failed"
