"""POST /v1/queues/{name}/jobs: creation, every validation rule, and nothing written on failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from billing.models import UsageCounter
from jobs.models import Job
from queues.models import DEFAULT_RETRY_POLICY, Event, QueueMinuteStat

pytestmark = pytest.mark.django_db

URL = "/v1/queues/emails/jobs"


def _post(client, body, url=URL, **extra):
    return client.post(url, body, format="json", **extra)


def _assert_nothing_written():
    assert Job.objects.count() == 0
    assert Event.objects.count() == 0
    assert QueueMinuteStat.objects.count() == 0
    assert not UsageCounter.objects.filter(jobs_enqueued__gt=0).exists()


def test_enqueue_creates_waiting_job_with_event_rollup_and_usage(api_client, workspace, queue):
    response = _post(
        api_client, {"payload": {"to": "a@example.com"}, "name": "send", "tags": ["t1"], "priority": 5}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("job_")
    assert body["queue"] == "emails"
    assert body["state"] == "waiting"
    assert body["payload"] == {"to": "a@example.com"}
    assert body["tags"] == ["t1"] and body["priority"] == 5 and body["name"] == "send"
    assert body["max_attempts"] == DEFAULT_RETRY_POLICY["max_attempts"]
    assert body["attempts"] == 0
    job = Job.objects.get(id=body["id"])
    assert job.workspace_id == workspace.id and job.queue_id == queue.id
    assert job.created_at == job.updated_at
    event = Event.objects.get(job_id=job.id)
    assert event.type == "job:waiting" and event.queue_name == "emails" and event.workspace_id == workspace.id
    assert QueueMinuteStat.objects.get(queue=queue).enqueued == 1
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 1


def test_rollup_accumulates_within_the_minute(api_client, queue):
    for _ in range(3):
        assert _post(api_client, {"payload": 1}).status_code == 201
    stats = list(QueueMinuteStat.objects.filter(queue=queue))
    assert sum(s.enqueued for s in stats) == 3
    assert len(stats) <= 2  # a minute boundary may fall between requests


def test_delay_ms_makes_a_delayed_job(api_client, queue):
    before = datetime.now(UTC)
    response = _post(api_client, {"payload": None, "delay_ms": 60_000})
    assert response.status_code == 201, response.content
    job = Job.objects.get(id=response.json()["id"])
    assert job.state == "delayed"
    assert job.run_at >= before + timedelta(seconds=59)
    assert Event.objects.get(job_id=job.id).type == "job:delayed"


def test_run_at_in_the_past_is_waiting_and_future_is_delayed(api_client, queue):
    past = _post(api_client, {"run_at": "2020-01-01T00:00:00Z"})
    future = _post(api_client, {"run_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
    assert past.status_code == 201 and future.status_code == 201
    assert past.json()["state"] == "waiting"
    assert future.json()["state"] == "delayed"


def test_delay_ms_zero_is_waiting(api_client, queue):
    response = _post(api_client, {"delay_ms": 0})
    assert response.status_code == 201
    assert response.json()["state"] == "waiting"


def test_wait_for_children_parent_is_delayed_and_child_points_to_it(api_client, queue):
    parent = _post(api_client, {"wait_for_children": True, "ignore_child_failures": True})
    assert parent.status_code == 201
    assert parent.json()["state"] == "delayed"
    assert parent.json()["wait_for_children"] is True and parent.json()["ignore_child_failures"] is True
    child = _post(api_client, {"parent_id": parent.json()["id"]})
    assert child.status_code == 201
    assert Job.objects.get(id=child.json()["id"]).parent_id == parent.json()["id"]


def test_unknown_queue_is_404(api_client, queue):
    response = _post(api_client, {"payload": 1}, url="/v1/queues/nope/jobs")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    _assert_nothing_written()


def test_other_workspaces_queue_is_404(other_workspace_client, queue):
    response = _post(other_workspace_client, {"payload": 1})
    assert response.status_code == 404
    _assert_nothing_written()


def test_form_body_is_415(api_client, queue):
    response = api_client.post(URL, {"payload": "x"})  # multipart
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_non_object_body_is_400(api_client, queue):
    response = _post(api_client, [1, 2])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    _assert_nothing_written()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nope": 1}, "nope"),
        ({"id": "job_x"}, "id"),
        ({"state": "completed"}, "state"),
        ({"attempts": 3}, "attempts"),
        ({"created_at": "2026-01-01T00:00:00Z"}, "created_at"),
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": 5}, "name"),
        ({"tags": "a"}, "tags"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": [1]}, "tags"),
        ({"priority": 101}, "priority"),
        ({"priority": -101}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"priority": "1"}, "priority"),
        ({"delay_ms": -1}, "delay_ms"),
        ({"delay_ms": 31_536_000_001}, "delay_ms"),
        ({"delay_ms": True}, "delay_ms"),
        ({"delay_ms": 10, "run_at": "2030-01-01T00:00:00Z"}, "delay_ms"),
        ({"run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": 12}, "run_at"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 101}, "max_attempts"),
        ({"max_attempts": False}, "max_attempts"),
        ({"timeout_ms": 99}, "timeout_ms"),
        ({"timeout_ms": 300_001}, "timeout_ms"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"group": ""}, "group"),
        ({"group": "g" * 129}, "group"),
        ({"parent_id": "job_doesnotexist"}, "parent_id"),
        ({"parent_id": 5}, "parent_id"),
        ({"wait_for_children": "yes"}, "wait_for_children"),
        ({"ignore_child_failures": 1}, "ignore_child_failures"),
        ({"retry_policy": 3}, "retry_policy"),
        ({"retry_policy": {"max_attempts": 0}}, "retry_policy.max_attempts"),
        ({"retry_policy": {"max_attempts": 101}}, "retry_policy.max_attempts"),
        ({"retry_policy": {"backoff": "linear"}}, "retry_policy.backoff"),
        ({"retry_policy": {"multiplier": 0.5}}, "retry_policy.multiplier"),
        ({"retry_policy": {"multiplier": 11}}, "retry_policy.multiplier"),
        ({"retry_policy": {"jitter": "no"}}, "retry_policy.jitter"),
        ({"retry_policy": {"initial_delay_ms": -1}}, "retry_policy.initial_delay_ms"),
        ({"retry_policy": {"color": "red"}}, "retry_policy.color"),
        ({"retry_policy": {"initial_delay_ms": 5000, "max_delay_ms": 1000}}, "retry_policy.max_delay_ms"),
        ({"http": "https://example.com"}, "http"),
        ({"http": {"method": "POST"}}, "http.url"),
        ({"http": {"url": "ftp://example.com/x"}}, "http.url"),
        ({"http": {"url": "http://127.0.0.1:9/x"}}, "http.url"),
        ({"http": {"url": "http://169.254.169.254/latest"}}, "http.url"),
    ],
)
def test_invalid_field_is_400_and_writes_nothing(api_client, queue, body, field):
    response = _post(api_client, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"], error
    assert isinstance(error["details"][field], list)
    _assert_nothing_written()


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
@pytest.mark.parametrize(
    ("http", "field"),
    [
        ({"url": "http://127.0.0.1:9/x", "method": "TRACE"}, "http.method"),
        ({"url": "http://127.0.0.1:9/x", "headers": {"a": 1}}, "http.headers"),
        ({"url": "http://127.0.0.1:9/x", "body": {"not": "a string"}}, "http.body"),
        ({"url": "http://127.0.0.1:9/x", "body": "x" * (1024 * 1024 + 1)}, "http.body"),
        ({"url": "http://127.0.0.1:9/x", "extra": 1}, "http.extra"),
    ],
)
def test_invalid_http_target_is_400(api_client, queue, http, field):
    response = _post(api_client, {"http": http})
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    _assert_nothing_written()


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
def test_http_target_is_stored_normalised(api_client, queue):
    response = _post(api_client, {"http": {"url": "http://127.0.0.1:9/hook", "method": "put", "body": "hi"}})
    assert response.status_code == 201, response.content
    assert response.json()["http"] == {
        "url": "http://127.0.0.1:9/hook",
        "method": "PUT",
        "headers": {},
        "body": "hi",
    }


def test_private_target_refused_even_if_metadata_allowed(api_client, queue):
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True):
        response = _post(api_client, {"http": {"url": "http://169.254.169.254/"}})
    assert response.status_code == 400
    assert "http.url" in response.json()["error"]["details"]


def test_push_queue_without_endpoint_needs_http_target(api_client, push_queue_without_endpoint):
    response = _post(api_client, {"payload": 1}, url="/v1/queues/hooks/jobs")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "http" in response.json()["error"]["details"]
    _assert_nothing_written()
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True):
        ok = _post(
            api_client, {"payload": 1, "http": {"url": "http://127.0.0.1:9/"}}, url="/v1/queues/hooks/jobs"
        )
    assert ok.status_code == 201, ok.content


def test_parent_of_other_workspace_is_unknown(api_client, other_workspace_client, queue, other_queue):
    foreign = _post(other_workspace_client, {"payload": 1})
    assert foreign.status_code == 201
    response = _post(api_client, {"parent_id": foreign.json()["id"]})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["parent_id"] == ["Unknown parent job."]
    assert Job.objects.filter(workspace__name="acme").count() == 0


def test_all_errors_are_reported_together(api_client, queue):
    response = _post(api_client, {"priority": 500, "tags": "x", "bogus": 1})
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"priority", "tags", "bogus"}


@override_settings(SPINDLE_MAX_PAYLOAD_BYTES=100)
def test_payload_over_limit_is_413(api_client, queue):
    response = _post(api_client, {"payload": {"x": "y" * 100}})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert "payload" in error["details"]
    _assert_nothing_written()
    assert _post(api_client, {"payload": {"x": "y" * 80}}).status_code == 201


def test_payload_of_default_limit_plus_one_is_413(api_client, queue):
    response = _post(api_client, {"payload": "x" * (1024 * 1024 - 1)})  # 2 quotes: 1 MiB + 1 byte
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    _assert_nothing_written()
    assert _post(api_client, {"payload": "x" * (1024 * 1024 - 2)}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"max_attempts": 5}, "max_attempts", 4),
        ({"retry_policy": {"max_attempts": 5}}, "retry_policy.max_attempts", 4),
        ({"timeout_ms": 30_001}, "timeout_ms", 30_000),
    ],
)
def test_value_above_plan_cap_is_402(api_client, queue, body, field, limit):
    response = _post(api_client, body)
    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert error["code"] == "PLAN_LIMIT"
    assert error["details"]["limit"] == limit and error["details"]["plan"] == "free"
    assert error["details"]["field"] == field
    _assert_nothing_written()


def test_plan_cap_boundaries_are_accepted(api_client, queue):
    response = _post(api_client, {"max_attempts": 4, "timeout_ms": 30_000})
    assert response.status_code == 201
    assert response.json()["max_attempts"] == 4 and response.json()["timeout_ms"] == 30_000


def test_partial_retry_policy_is_merged_over_the_queues(api_client, queue):
    queue.retry_policy = {**DEFAULT_RETRY_POLICY, "max_attempts": 3, "initial_delay_ms": 500}
    queue.save()
    response = _post(api_client, {"retry_policy": {"backoff": "fixed"}})
    assert response.status_code == 201
    body = response.json()
    assert body["retry_policy"] == {
        **DEFAULT_RETRY_POLICY,
        "max_attempts": 3,
        "initial_delay_ms": 500,
        "backoff": "fixed",
    }
    assert body["max_attempts"] == 3
    explicit = _post(api_client, {"max_attempts": 2, "retry_policy": {"max_attempts": 4}})
    assert explicit.json()["max_attempts"] == 2


def test_quota_exceeded_is_402_and_counts_nothing(api_client, workspace, queue, plans):
    plans["free"].jobs_per_month = 1
    plans["free"].save()
    assert _post(api_client, {"payload": 1}).status_code == 201
    response = _post(api_client, {"payload": 2})
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert error["details"] == {"used": 1, "limit": 1, "plan": "free"}
    assert Job.objects.count() == 1
    assert Event.objects.count() == 1
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 1
    assert QueueMinuteStat.objects.get(queue=queue).enqueued == 1
