"""POST /v1/queues/{name}/jobs/batch: order, all or nothing, per-item errors, keys, quota."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import UsageCounter
from jobs.models import Job
from jobs.services.enqueue import job_enqueue_specs
from jobs.specs import JobSpec
from queues.models import Event, QueueMinuteStat
from tests.sqltext import expand_prepared

pytestmark = pytest.mark.django_db

# Query counts are pinned on PostgreSQL; the embedded mode's database cache adds queries of its own.
ON_POSTGRES = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="query counts pinned on PostgreSQL"
)

URL = "/v1/queues/emails/jobs/batch"


def _batch(client, jobs, **extra):
    return client.post(URL, {"jobs": jobs}, format="json", **extra)


def test_batch_creates_in_input_order(api_client, workspace, queue):
    jobs = [{"payload": {"n": i}, "priority": i % 7, "delay_ms": 60_000 if i % 2 else 0} for i in range(50)]
    response = _batch(api_client, jobs)
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert [d["payload"]["n"] for d in data] == list(range(50))
    assert [d["state"] for d in data[:2]] == ["waiting", "delayed"]
    ids = [d["id"] for d in data]
    assert len(set(ids)) == 50 and ids == sorted(ids)  # time-ordered ids, monotonic within the batch
    assert Job.objects.filter(queue=queue).count() == 50
    assert Event.objects.filter(type="job:waiting").count() == 25
    assert Event.objects.filter(type="job:delayed").count() == 25
    assert set(Event.objects.values_list("job_id", flat=True)) == set(ids)
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 50
    assert QueueMinuteStat.objects.get(queue=queue).enqueued == 50


@ON_POSTGRES
def test_batch_of_1000_is_set_based(api_client, queue):
    api_client.get("/v1/jobs")  # warm the key's last_used_at write out of the measurement
    with CaptureQueriesContext(connection) as ctx:
        response = _batch(api_client, [{"payload": {"n": i}} for i in range(1000)])
    assert response.status_code == 201
    assert len(response.json()["data"]) == 1000
    # The jobs go in by one set-based INSERT … SELECT (one statement for all rows): no per-job INSERT.
    captured = expand_prepared([q["sql"] for q in ctx.captured_queries])
    inserts = [sql for sql in captured if "INSERT INTO jobs_job" in sql.replace('"', "")]
    assert len(inserts) == 1 and inserts[0].count("INSERT INTO jobs_job") == 1
    assert "jsonb_populate_recordset" in inserts[0]
    # One INSERT of the 1,000 events too, in the same round trip.
    assert inserts[0].replace('"', "").count("INSERT INTO jobs_event") == 1
    # auth, queue, usage row, quota update, jobs, events, rollup (+ savepoint/transaction bookkeeping).
    assert len([q for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]) <= 8


def test_batch_over_1000_is_400(api_client, queue):
    response = _batch(api_client, [{}] * 1001)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "jobs" in response.json()["error"]["details"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize("body", [{}, {"jobs": []}, {"jobs": {"a": 1}}, {"jobs": [{}], "extra": 1}])
def test_batch_shape_errors(api_client, queue, body):
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert Job.objects.count() == 0


def test_one_bad_item_fails_the_batch_with_per_item_errors(api_client, workspace, queue):
    jobs = [
        {"payload": 1},
        {"payload": 2, "priority": 999},
        {"payload": 3},
        "nope",
        {"tags": ["x" * 65], "id": "x"},
    ]
    response = _batch(api_client, jobs)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert set(error["details"]) == {"jobs.1.priority", "jobs.3", "jobs.4.tags", "jobs.4.id"}
    assert Job.objects.count() == 0
    assert Event.objects.count() == 0
    assert not UsageCounter.objects.filter(workspace=workspace, jobs_enqueued__gt=0).exists()


@override_settings(SPINDLE_MAX_PAYLOAD_BYTES=50)
def test_batch_item_payload_too_large_is_413(api_client, queue):
    response = _batch(api_client, [{"payload": "ok"}, {"payload": "y" * 60}])
    assert response.status_code == 413
    assert "jobs.1.payload" in response.json()["error"]["details"]
    assert Job.objects.count() == 0


def test_batch_item_above_plan_cap_is_402(api_client, queue):
    response = _batch(api_client, [{"payload": 1}, {"max_attempts": 10}])
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "PLAN_LIMIT"
    assert response.json()["error"]["details"]["field"] == "jobs.1.max_attempts"
    assert Job.objects.count() == 0


def test_batch_quota_counts_every_new_job_all_or_nothing(api_client, workspace, queue, plans):
    plans["free"].jobs_per_month = 5
    plans["free"].save()
    assert _batch(api_client, [{"payload": i} for i in range(3)]).status_code == 201
    response = _batch(api_client, [{"payload": i} for i in range(3)])
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert response.json()["error"]["details"] == {"used": 3, "limit": 5, "plan": "free"}
    assert Job.objects.count() == 3
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 3
    assert _batch(api_client, [{"payload": i} for i in range(2)]).status_code == 201


def test_batch_idempotency_keys_existing_and_duplicates(api_client, workspace, queue):
    first = api_client.post(
        "/v1/queues/emails/jobs", {"payload": "old", "idempotency_key": "a"}, format="json"
    )
    assert first.status_code == 201
    jobs = [
        {"payload": "new-a", "idempotency_key": "a"},  # exists: the existing job, not counted
        {"payload": "b1", "idempotency_key": "b"},
        {"payload": "plain"},
        {"payload": "b2", "idempotency_key": "b"},  # duplicate in the batch: same job as item 1
    ]
    response = _batch(api_client, jobs)
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data[0]["id"] == first.json()["id"] and data[0]["payload"] == "old"
    assert data[1]["id"] == data[3]["id"] and data[3]["payload"] == "b1"
    assert len({d["id"] for d in data}) == 3
    assert Job.objects.count() == 3
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 3  # 1 + 2 new


def test_service_inside_an_outer_transaction_rolls_back_with_it(workspace, queue):
    """Events, jobs, usage and rollup are one transaction: roll the outer block back and all are gone."""

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        results = job_enqueue_specs(
            workspace=workspace, queue=queue, specs=[JobSpec(payload=1), JobSpec(payload=2)]
        )
        assert [created for _, created in results] == [True, True]
        assert Event.objects.filter(job_id__in=[j.id for j, _ in results]).count() == 2
        raise Boom
    assert Job.objects.count() == 0
    assert Event.objects.count() == 0
    assert QueueMinuteStat.objects.count() == 0
    assert not UsageCounter.objects.filter(jobs_enqueued__gt=0).exists()


def test_service_expired_key_is_released(workspace, queue):
    with transaction.atomic():
        ((old, _),) = job_enqueue_specs(
            workspace=workspace, queue=queue, specs=[JobSpec(idempotency_key="k")]
        )
    Job.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(hours=25))
    with transaction.atomic():
        ((new, created),) = job_enqueue_specs(
            workspace=workspace, queue=queue, specs=[JobSpec(idempotency_key="k")]
        )
    assert created and new.id != old.id
    old.refresh_from_db()
    assert old.idempotency_key is None
    assert Job.objects.get(id=new.id).idempotency_key == "k"


def test_batch_to_other_workspaces_queue_is_404_before_body_checks(other_workspace_client, queue):
    for body in ({}, {"jobs": [{"payload": 1}]}):
        response = other_workspace_client.post(URL, body, format="json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert Job.objects.count() == 0


def test_the_prerendered_batch_body_is_what_drf_renders_and_indent_is_still_honoured(api_client, queue):
    from rest_framework.renderers import JSONRenderer

    jobs = [{"payload": {"n": i, "text": "é\u2028"}, "tags": ["t"]} for i in range(3)]
    response = _batch(api_client, jobs)
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    assert response.content == JSONRenderer().render(response.data)
    assert b"\n" not in response.content
    indented = _batch(api_client, jobs, HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 201
    assert indented.content.startswith(b'{\n  "data": [\n')
    assert indented.json()["data"][0]["payload"] == {"n": 0, "text": "é\u2028"}
