"""API.md Conventions: `Idempotency-Key` on every POST that creates, scoped by workspace (issue 9, item 8).

One parametrized test over every such route: a repeat with the same key and body answers the first status and
body and creates nothing more; the same key with another body is 422 IDEMPOTENCY_KEY_REUSED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from alerts.models import Alert, WebhookSubscription
from jobs.models import Execution, Job, Worker
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from queues.models import Queue
from schedules.models import Schedule
from tests.factories import ScheduleFactory


@dataclass
class Route:
    """How to exercise one creating POST: its URL (after setup), a body, and what it creates."""

    url: Callable[[Any, Queue], str]
    body: dict[str, Any]
    created: Callable[[Any], int]


def _schedule(workspace: Any, queue: Queue) -> str:
    ScheduleFactory(queue=queue, name="nightly")
    return "/v1/schedules/nightly/trigger"


def _execution(workspace: Any, queue: Queue) -> str:
    [(job, _)] = job_enqueue_batch(workspace=workspace, queue=queue, specs=[JobSpec(payload={"n": 1})])
    now = timezone.now()
    execution = Execution.objects.create(
        workspace=workspace,
        job=job,
        queue=queue,
        attempt=1,
        status="failed",
        started_at=now,
        completed_at=now,
    )
    return f"/v1/executions/{execution.id}/replay"


ROUTES: dict[str, Route] = {
    "queue create": Route(
        lambda ws, q: "/v1/queues",
        {"name": "emails", "delivery": "pull"},
        lambda ws: Queue.objects.filter(workspace=ws).count(),
    ),
    "worker register": Route(
        lambda ws, q: "/v1/workers",
        {"name": "w1", "queues": ["work"], "hostname": "box", "concurrency": 2},
        lambda ws: Worker.objects.filter(workspace=ws).count(),
    ),
    "key create": Route(
        lambda ws, q: "/v1/keys",
        {"name": "ci"},
        lambda ws: ApiKey.objects.filter(workspace=ws).count(),
    ),
    "schedule trigger": Route(
        _schedule,
        {},
        lambda ws: Job.objects.filter(workspace=ws, schedule_id__isnull=False).count(),
    ),
    "execution replay": Route(
        _execution,
        {},
        lambda ws: Job.objects.filter(workspace=ws, replay_of__isnull=False).count(),
    ),
    "job enqueue": Route(
        lambda ws, q: f"/v1/queues/{q.name}/jobs",
        {"payload": {"n": 1}},
        lambda ws: Job.objects.filter(workspace=ws).count(),
    ),
    "schedule create": Route(
        lambda ws, q: "/v1/schedules",
        {"name": "hourly", "queue": "work", "cron": "@hourly"},
        lambda ws: Schedule.objects.filter(workspace=ws).count(),
    ),
    "alert create": Route(
        lambda ws, q: "/v1/alerts",
        {"name": "ops", "channel": "email", "target": "ops@example.com"},
        lambda ws: Alert.objects.filter(workspace=ws).count(),
    ),
    "webhook create": Route(
        lambda ws, q: "/v1/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["*"]},
        lambda ws: WebhookSubscription.objects.filter(workspace=ws).count(),
    ),
}


def _post(client: Any, url: str, body: dict[str, Any], key: str) -> Any:
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(ROUTES))
def test_idempotency_key_on_every_create(name, api_client, workspace, pull_queue, private_targets):
    route = ROUTES[name]
    url = route.url(workspace, pull_queue)
    before = route.created(workspace)

    first = _post(api_client, url, route.body, "key-1")
    assert 200 <= first.status_code < 300, first.content
    assert route.created(workspace) == before + 1

    again = _post(api_client, url, route.body, "key-1")
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert route.created(workspace) == before + 1

    reused = _post(api_client, url, {**route.body, "other": 1}, "key-1")
    assert reused.status_code == 422, reused.content
    assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert route.created(workspace) == before + 1

    # Without the header every call creates (the key is what makes a repeat harmless).
    fresh = api_client.post(url, route.body, format="json")
    assert fresh.status_code != 422


CREATE_OPERATIONS = [
    ("/v1/queues", "post"),
    ("/v1/workers", "post"),
    ("/v1/keys", "post"),
    ("/v1/schedules/{schedule_name}/trigger", "post"),
    ("/v1/executions/{execution_id}/replay", "post"),
    ("/v1/queues/{queue_name}/jobs", "post"),
    ("/v1/queues/{queue_name}/jobs/batch", "post"),
    ("/v1/schedules", "post"),
    ("/v1/alerts", "post"),
    ("/v1/webhooks", "post"),
]


@pytest.mark.django_db
def test_schema_documents_the_header_on_every_create(api_client):
    schema = api_client.get("/openapi.json").json()
    missing = []
    for path, method in CREATE_OPERATIONS:
        params = schema["paths"][path][method].get("parameters", [])
        if not any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in params):
            missing.append(f"{method.upper()} {path}")
    assert missing == []
    # Unauthenticated creates have no workspace to scope a key by: not offered there, and the header says so.
    for path in ("/v1/auth/register", "/v1/auth/register-anonymous"):
        register = schema["paths"][path]["post"]
        assert not any(p["name"] == "Idempotency-Key" for p in register.get("parameters", []))
        assert "Idempotency-Key header is not honoured" in register["description"]
    header = next(
        p for p in schema["paths"]["/v1/queues"]["post"]["parameters"] if p["name"] == "Idempotency-Key"
    )
    assert "register" in header["description"]
