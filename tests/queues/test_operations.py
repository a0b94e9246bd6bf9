from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from jobs.models import Execution, Job
from jobs.services import queue_ops
from queues.models import Event, Queue, QueueMinuteStat
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


# --- pause / resume --------------------------------------------------------------------------------------------
def test_pause_and_resume_whole_queue_emit_events(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.post("/v1/queues/emails/pause", format="json")
    assert response.status_code == 200, response.content
    assert response.json()["paused"] is True and response.json()["name"] == "emails"
    assert Queue.objects.get(workspace=workspace, name="emails").paused is True
    events = list(Event.objects.filter(workspace=workspace).order_by("id"))
    assert [(e.type, e.queue_name, e.data) for e in events] == [
        ("queue:paused", "emails", {"job_name": None})
    ]

    # Pausing a paused queue changes nothing and emits nothing.
    assert api_client.post("/v1/queues/emails/pause", {}, format="json").status_code == 200
    assert Event.objects.filter(workspace=workspace).count() == 1

    response = api_client.post("/v1/queues/emails/resume", {}, format="json")
    assert response.status_code == 200
    assert response.json()["paused"] is False
    assert Queue.objects.get(workspace=workspace, name="emails").paused is False
    assert list(Event.objects.filter(workspace=workspace).order_by("id").values_list("type", flat=True)) == [
        "queue:paused",
        "queue:resumed",
    ]


def test_pause_and_resume_one_job_name(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.post("/v1/queues/emails/pause", {"job_name": "send"}, format="json")
    assert response.status_code == 200
    assert response.json()["paused"] is False and response.json()["paused_job_names"] == ["send"]
    api_client.post("/v1/queues/emails/pause", {"job_name": "digest"}, format="json")
    api_client.post("/v1/queues/emails/pause", {"job_name": "send"}, format="json")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    assert queue.paused is False and queue.paused_job_names == ["send", "digest"]
    response = api_client.post("/v1/queues/emails/resume", {"job_name": "send"}, format="json")
    assert response.json()["paused_job_names"] == ["digest"]
    events = Event.objects.filter(workspace=workspace).order_by("id")
    assert [(e.type, e.data["job_name"]) for e in events] == [
        ("queue:paused", "send"),
        ("queue:paused", "digest"),
        ("queue:resumed", "send"),
    ]
    # "__all__" means the whole queue (BullMQ dashboards' convention).
    api_client.post("/v1/queues/emails/pause", {"job_name": "__all__"}, format="json")
    assert Queue.objects.get(workspace=workspace, name="emails").paused is True


@pytest.mark.parametrize("body", [{"job_name": 5}, {"job_name": "x" * 129}, {"jobName": "x"}])
def test_pause_body_validation(api_client, post_queue, workspace, body):
    post_queue("emails")
    response = api_client.post("/v1/queues/emails/pause", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert Queue.objects.get(workspace=workspace, name="emails").paused_job_names == []
    assert not Event.objects.filter(workspace=workspace).exists()


# --- rotate secret ---------------------------------------------------------------------------------------------
def test_rotate_secret_keeps_old_one_for_24h(api_client, post_queue, workspace):
    first = post_queue("emails")["signing_secret"]
    before = timezone.now()
    response = api_client.post("/v1/queues/emails/rotate-secret", format="json")
    assert response.status_code == 200, response.content
    new = response.json()["signing_secret"]
    assert new.startswith("whsec_") and new != first and len(base64.b64decode(new[6:])) == 32
    assert response.json()["name"] == "emails"
    queue = Queue.objects.get(workspace=workspace, name="emails")
    assert queue.signing_secret == new and queue.previous_signing_secret == first
    assert (
        before + timedelta(hours=24)
        <= queue.previous_secret_expires_at
        <= timezone.now() + timedelta(hours=24)
    )
    assert queue.active_signing_secrets(timezone.now()) == [new, first]
    assert queue.active_signing_secrets(timezone.now() + timedelta(hours=25)) == [new]
    assert "signing_secret" not in api_client.get("/v1/queues/emails").json()


def test_rotate_secret_refuses_a_body(api_client, post_queue, workspace):
    first = post_queue("emails")["signing_secret"]
    response = api_client.post("/v1/queues/emails/rotate-secret", {"secret": "mine"}, format="json")
    assert response.status_code == 400
    assert Queue.objects.get(workspace=workspace, name="emails").signing_secret == first


# --- delete ----------------------------------------------------------------------------------------------------
def test_delete_empty_queue(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.delete("/v1/queues/emails")
    assert response.status_code == 204
    assert not Queue.objects.filter(workspace=workspace).exists()
    assert api_client.get("/v1/queues/emails").status_code == 404


@pytest.mark.parametrize("state", ["waiting", "delayed", "active"])
def test_delete_with_unfinished_jobs_is_409_then_force(api_client, post_queue, workspace, state):
    post_queue("emails")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    job = JobFactory(queue=queue, state=state)
    JobFactory(queue=queue, state="completed")
    Execution.objects.create(workspace=workspace, job=job, queue=queue, attempt=1, started_at=timezone.now())
    response = api_client.delete("/v1/queues/emails")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert Queue.objects.filter(pk=queue.pk).exists()
    assert Job.objects.filter(queue=queue).count() == 2

    response = api_client.delete("/v1/queues/emails?force=false")
    assert response.status_code == 409

    response = api_client.delete("/v1/queues/emails?force=true")
    assert response.status_code == 204
    assert not Queue.objects.filter(pk=queue.pk).exists()
    assert not Job.objects.filter(queue_id=queue.pk).exists()
    assert not Execution.objects.filter(queue_id=queue.pk).exists()


def test_delete_with_only_finished_jobs_removes_them(api_client, post_queue, workspace):
    post_queue("emails")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    for state in ("completed", "failed", "cancelled"):
        JobFactory(queue=queue, state=state)
    assert api_client.delete("/v1/queues/emails").status_code == 204
    assert not Job.objects.filter(queue_id=queue.pk).exists()


def test_delete_bad_force_is_400(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.delete("/v1/queues/emails?force=maybe")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert Queue.objects.filter(workspace=workspace, name="emails").exists()


def test_obliterate_in_batches_keeps_children_elsewhere(api_client, post_queue, workspace, monkeypatch):
    monkeypatch.setattr(queue_ops, "OBLITERATE_BATCH", 3)
    post_queue("emails")
    post_queue("other")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    other = Queue.objects.get(workspace=workspace, name="other")
    parents = [JobFactory(queue=queue, state="waiting") for _ in range(7)]
    child = JobFactory(queue=other, state="waiting", parent=parents[0])
    response = api_client.delete("/v1/queues/emails?force=true")
    assert response.status_code == 204
    assert not Job.objects.filter(queue_id=queue.pk).exists()
    child.refresh_from_db()
    assert child.parent_id is None and child.queue_id == other.pk


# --- metrics ---------------------------------------------------------------------------------------------------
def _stat(queue: Queue, minute: datetime, **fields) -> QueueMinuteStat:
    return QueueMinuteStat.objects.create(workspace=queue.workspace, queue=queue, minute=minute, **fields)


def test_metrics_minute_buckets(api_client, post_queue, workspace):
    post_queue("emails")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    t0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    _stat(
        queue,
        t0,
        enqueued=5,
        completed=3,
        failed=1,
        duration_sum_ms=300,
        duration_count=3,
        duration_hist={"100": 2, "250": 1},
    )
    _stat(
        queue,
        t0 + timedelta(minutes=2),
        enqueued=1,
        completed=20,
        duration_sum_ms=2000,
        duration_count=20,
        duration_hist={"50": 18, "500": 1, "1000": 1},
    )
    response = api_client.get("/v1/queues/emails/metrics?from=2026-01-15T12:00:00Z&to=2026-01-15T12:03:00Z")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["granularity"] == "minute"
    assert [b["ts"] for b in body["data"]] == [
        "2026-01-15T12:00:00.000Z",
        "2026-01-15T12:01:00.000Z",
        "2026-01-15T12:02:00.000Z",
        "2026-01-15T12:03:00.000Z",
    ]
    assert body["data"][0] == {
        "ts": "2026-01-15T12:00:00.000Z",
        "enqueued": 5,
        "completed": 3,
        "failed": 1,
        "avg_duration_ms": 100.0,
        "p95_duration_ms": 250,
    }
    assert body["data"][1] == {
        "ts": "2026-01-15T12:01:00.000Z",
        "enqueued": 0,
        "completed": 0,
        "failed": 0,
        "avg_duration_ms": None,
        "p95_duration_ms": None,
    }
    # 18 of 20 under 50 ms, the 19th (95%) in the 500 ms bucket.
    assert body["data"][2]["p95_duration_ms"] == 500 and body["data"][2]["avg_duration_ms"] == 100.0


def test_metrics_hour_buckets_merge_minutes(api_client, post_queue, workspace):
    post_queue("emails")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    t0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    for i in range(3):
        _stat(
            queue,
            t0 + timedelta(minutes=10 * i),
            enqueued=2,
            completed=2,
            failed=1,
            duration_sum_ms=40,
            duration_count=2,
            duration_hist={"10": 1, "30": 1},
        )
    _stat(
        queue,
        t0 + timedelta(hours=1, minutes=5),
        completed=1,
        duration_sum_ms=7,
        duration_count=1,
        duration_hist={"10": 1},
    )
    response = api_client.get(
        "/v1/queues/emails/metrics?granularity=hour&from=2026-01-15T11:30:00Z&to=2026-01-15T13:59:00Z"
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert [b["ts"] for b in data] == [
        "2026-01-15T11:00:00.000Z",
        "2026-01-15T12:00:00.000Z",
        "2026-01-15T13:00:00.000Z",
    ]
    assert data[1] == {
        "ts": "2026-01-15T12:00:00.000Z",
        "enqueued": 6,
        "completed": 6,
        "failed": 3,
        "avg_duration_ms": 20.0,
        "p95_duration_ms": 30,
    }
    assert data[2]["completed"] == 1 and data[2]["p95_duration_ms"] == 10
    assert data[0]["completed"] == 0


def test_metrics_defaults_to_last_hour(api_client, post_queue, workspace):
    post_queue("emails")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    _stat(queue, timezone.now().replace(second=0, microsecond=0), completed=4)
    data = api_client.get("/v1/queues/emails/metrics").json()["data"]
    assert len(data) == 61 and data[-1]["completed"] == 4


@pytest.mark.parametrize(
    "query",
    [
        "granularity=second",
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ],
)
def test_metrics_bad_params_are_400(api_client, post_queue, query):
    post_queue("emails")
    response = api_client.get(f"/v1/queues/emails/metrics?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_sparklines(api_client, post_queue, workspace, other_workspace_client):
    post_queue("b")
    post_queue("a")
    qa = Queue.objects.get(workspace=workspace, name="a")
    now = timezone.now().replace(second=0, microsecond=0)
    _stat(qa, now, completed=7, failed=1)
    _stat(qa, now - timedelta(minutes=59), completed=2)
    _stat(qa, now - timedelta(minutes=60), completed=99)  # outside the window
    response = api_client.get("/v1/metrics/sparklines")
    assert response.status_code == 200
    data = response.json()["data"]
    assert [d["queue"] for d in data] == ["a", "b"]
    assert len(data[0]["completed"]) == 60 and len(data[0]["failed"]) == 60
    assert data[0]["completed"][0] == 2 and data[0]["completed"][-1] == 7 and sum(data[0]["completed"]) == 9
    assert data[0]["failed"][-1] == 1 and sum(data[0]["failed"]) == 1
    assert data[1]["completed"] == [0] * 60
    assert other_workspace_client.get("/v1/metrics/sparklines").json() == {"data": []}


# --- isolation -------------------------------------------------------------------------------------------------
QUEUE_ROUTES = [
    ("get", "/v1/queues/emails", None),
    ("patch", "/v1/queues/emails", {"concurrency": 2}),
    ("delete", "/v1/queues/emails", None),
    ("delete", "/v1/queues/emails?force=true", None),
    ("post", "/v1/queues/emails/pause", {}),
    ("post", "/v1/queues/emails/resume", {}),
    ("post", "/v1/queues/emails/rotate-secret", None),
    ("get", "/v1/queues/emails/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), QUEUE_ROUTES)
def test_other_workspace_gets_404(post_queue, workspace, other_workspace_client, method, path, body):
    post_queue("emails")
    before = Queue.objects.get(workspace=workspace, name="emails")
    response = getattr(other_workspace_client, method)(path, body, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    after = Queue.objects.get(pk=before.pk)
    assert (after.updated_at, after.signing_secret, after.paused) == (
        before.updated_at,
        before.signing_secret,
        before.paused,
    )
    assert other_workspace_client.get("/v1/queues").json()["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        *QUEUE_ROUTES,
        ("get", "/v1/queues", None),
        ("post", "/v1/queues", {"name": "x"}),
        ("get", "/v1/metrics/sparklines", None),
    ],
)
def test_no_key_is_401(anon_client, plans, method, path, body):
    response = getattr(anon_client, method)(path, body, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
