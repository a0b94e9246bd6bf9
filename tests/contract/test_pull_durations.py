"""Pull executions carry `duration_ms` (finished - started), and the queue metrics show their durations.

API.md Executions: `duration_ms` on every finished attempt; Queues metrics: buckets with completions have a
numeric `avg_duration_ms` and `p95_duration_ms`, buckets without any keep null.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec

WORK_S = 0.06  # how long the "worker" holds each job


def _enqueue(workspace, queue, n: int) -> None:
    job_enqueue_batch(workspace=workspace, queue=queue, specs=[JobSpec(payload={"n": i}) for i in range(n)])


def _claim(client, n: int) -> list[dict]:
    response = client.post("/v1/queues/work/jobs/claim", {"limit": n}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def _executions(client, job_id: str) -> list[dict]:
    response = client.get(f"/v1/executions?job_id={job_id}")
    assert response.status_code == 200
    return response.json()["data"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@pytest.mark.django_db
def test_complete_and_fail_record_duration(api_client, workspace, pull_queue):
    _enqueue(workspace, pull_queue, 2)
    done, failed = _claim(api_client, 2)
    time.sleep(WORK_S)
    ok = api_client.post(
        f"/v1/queues/work/jobs/{done['id']}/complete",
        {"lease_token": done["lease_token"], "result": {"ok": True}},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    bad = api_client.post(
        f"/v1/queues/work/jobs/{failed['id']}/fail",
        {"lease_token": failed["lease_token"], "error": {"message": "x"}, "retry": False},
        format="json",
    )
    assert bad.status_code == 200, bad.content
    for job_id in (done["id"], failed["id"]):
        [execution] = _executions(api_client, job_id)
        assert _is_number(execution["duration_ms"]), execution
        assert WORK_S * 1000 * 0.8 <= execution["duration_ms"] < 10_000


@pytest.mark.django_db
def test_batch_ack_records_duration(api_client, workspace, pull_queue):
    _enqueue(workspace, pull_queue, 3)
    jobs = _claim(api_client, 3)
    time.sleep(WORK_S)
    body = {
        "completed": [{"id": j["id"], "lease_token": j["lease_token"]} for j in jobs[:2]],
        "failed": [{"id": jobs[2]["id"], "lease_token": jobs[2]["lease_token"], "error": {"message": "x"}}],
    }
    response = api_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert response.status_code == 200 and response.json()["acked"] == 3, response.content
    durations = list(
        Execution.objects.filter(job_id__in=[j["id"] for j in jobs]).values_list("duration_ms", flat=True)
    )
    assert len(durations) == 3 and all(d is not None and d >= WORK_S * 1000 * 0.8 for d in durations), (
        durations
    )


@pytest.mark.django_db
def test_metrics_buckets_with_completions_have_numeric_durations(api_client, workspace, pull_queue):
    _enqueue(workspace, pull_queue, 4)
    jobs = _claim(api_client, 4)
    time.sleep(WORK_S)
    api_client.post(
        f"/v1/queues/work/jobs/{jobs[0]['id']}/complete",
        {"lease_token": jobs[0]["lease_token"]},
        format="json",
    )
    ack = {"completed": [{"id": j["id"], "lease_token": j["lease_token"]} for j in jobs[1:]]}
    assert api_client.post("/v1/queues/work/jobs/ack", ack, format="json").status_code == 200
    assert Job.objects.filter(state="completed").count() == 4

    now = timezone.now()
    for granularity, span in (("minute", timedelta(minutes=5)), ("hour", timedelta(hours=3))):
        start = (now - span).strftime("%Y-%m-%dT%H:%M:%SZ")
        response = api_client.get(f"/v1/queues/work/metrics?granularity={granularity}&from={start}")
        assert response.status_code == 200, response.content
        buckets = response.json()["data"]
        busy = [b for b in buckets if b["completed"]]
        idle = [b for b in buckets if not b["completed"] and not b["failed"]]
        assert sum(b["completed"] for b in busy) == 4
        assert idle, "the range has buckets without completions"
        for bucket in busy:
            assert _is_number(bucket["avg_duration_ms"]), bucket
            assert bucket["avg_duration_ms"] >= WORK_S * 1000 * 0.8
            assert _is_number(bucket["p95_duration_ms"]), bucket
            assert bucket["p95_duration_ms"] >= bucket["avg_duration_ms"] * 0.5
        for bucket in idle:
            assert bucket["avg_duration_ms"] is None and bucket["p95_duration_ms"] is None
