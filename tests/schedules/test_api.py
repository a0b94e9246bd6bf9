"""Every schedule route and validation rule (API.md "Schedules" and "Schedules: details")."""

from __future__ import annotations

from datetime import datetime

import pytest

from accounts.models import Plan
from jobs.models import Job
from queues.models import Event, Queue
from schedules.models import Schedule

pytestmark = pytest.mark.django_db

BASE = {
    "name": "nightly-sync",
    "queue": "sync",
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
    "job": {"name": "sync", "payload": {"full": True}, "tags": ["nightly"], "priority": 5},
}


def create(client, **overrides):
    body = {**BASE, **overrides}
    body = {k: v for k, v in body.items() if v is not ...}
    return client.post("/v1/schedules", body, format="json")


def error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    return response.json()["error"]["details"]


def test_create_returns_the_schedule(api_client, pull_queue):
    r = create(api_client, overlap="skip", description="nightly")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "nightly-sync" and body["queue"] == "sync" and body["description"] == "nightly"
    assert body["cron"] == "0 3 * * *" and body["interval_ms"] is None and body["timezone"] == "Europe/Berlin"
    assert body["job"] == {
        "name": "sync",
        "payload": {"full": True},
        "tags": ["nightly"],
        "priority": 5,
        "http": None,
        "retry_policy": None,
        "timeout_ms": None,
    }
    assert body["overlap"] == "skip" and body["paused"] is False
    assert body["last_run_at"] is None and body["last_job_id"] is None
    nxt = datetime.fromisoformat(body["next_run_at"].replace("Z", "+00:00"))
    assert nxt.minute == 0 and nxt.hour in (1, 2)  # 03:00 Berlin is 01:00 or 02:00 UTC
    assert set(body) == {
        "name",
        "description",
        "queue",
        "cron",
        "interval_ms",
        "timezone",
        "job",
        "overlap",
        "paused",
        "next_run_at",
        "last_run_at",
        "last_job_id",
        "created_at",
        "updated_at",
    }
    assert Schedule.objects.get(name="nightly-sync").queue_id == pull_queue.id


def test_create_interval_and_aliases(api_client, pull_queue):
    r = create(api_client, name="every-5s", cron=None, timezone=..., interval_ms=5000)
    assert r.status_code == 201, r.content
    assert r.json()["interval_ms"] == 5000 and r.json()["cron"] is None and r.json()["timezone"] is None
    for alias in ("@hourly", "@daily", "@weekly", "@monthly"):
        r = create(api_client, name=f"a{alias[1:]}", cron=alias, timezone=...)
        assert r.status_code == 201, r.content
        assert r.json()["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "@fortnightly"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 3 * * *", "interval_ms": 60000}, "cron"),
        ({"cron": None, "timezone": ..., "interval_ms": None}, "cron"),
        ({"cron": None, "timezone": ..., "interval_ms": 999}, "interval_ms"),
        ({"cron": None, "timezone": ..., "interval_ms": True}, "interval_ms"),
        ({"cron": None, "interval_ms": 60000, "timezone": "Europe/Berlin"}, "timezone"),
        ({"name": "bad name"}, "name"),
        ({"name": "-starts-with-dash"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"queue": "nope"}, "queue"),
        ({"queue": ...}, "queue"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"paused": "yes"}, "paused"),
        ({"job": {"priority": 101}}, "job.priority"),
        ({"job": {"tags": ["x"] * 11}}, "job.tags"),
        ({"job": {"unknown": 1}}, "job.unknown"),
        ({"job": {"http": {"url": "http://169.254.169.254/latest/meta-data"}}}, "job.http.url"),
        ({"job": {"http": {"url": "ftp://example.com/x"}}}, "job.http.url"),
        ({"colour": "blue"}, "colour"),
        ({"next_run_at": "2026-01-01T00:00:00Z"}, "next_run_at"),
        ({"id": "sch_x"}, "id"),
        ({"created_at": "2026-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_create_validation(api_client, pull_queue, overrides, field):
    details = error(create(api_client, **overrides), 400, "VALIDATION_ERROR")
    assert field in details, details
    assert Schedule.objects.count() == 0


def test_create_requires_json_object(api_client, pull_queue):
    r = api_client.post("/v1/schedules", [1, 2], format="json")
    error(r, 400, "VALIDATION_ERROR")
    r = api_client.post("/v1/schedules", {"name": "x"})  # form encoding
    error(r, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_http_target_without_queue_uses_default_queue(api_client, workspace, settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    r = create(
        api_client,
        queue=...,
        job={"http": {"url": "http://127.0.0.1:9/hook", "method": "post", "body": "{}"}},
    )
    assert r.status_code == 201, r.content
    assert r.json()["queue"] == "default"
    assert r.json()["job"]["http"]["method"] == "POST"
    queue = Queue.objects.get(workspace=workspace, name="default")
    assert queue.delivery == "push" and queue.endpoint is None


def test_push_queue_without_endpoint_needs_http(api_client, workspace):
    from queues.services import queue_create

    queue_create(workspace=workspace, data={"name": "sync", "delivery": "push"})
    details = error(create(api_client), 400, "VALIDATION_ERROR")
    assert "job.http" in details


def test_duplicate_name_is_conflict(api_client, pull_queue):
    assert create(api_client).status_code == 201
    error(create(api_client), 409, "CONFLICT")
    assert Schedule.objects.count() == 1


def test_same_name_in_other_workspace_is_fine(api_client, other_workspace_client, pull_queue, other_queue):
    assert create(api_client).status_code == 201
    assert create(other_workspace_client).status_code == 201


def test_plan_limit_on_count(api_client, pull_queue, workspace):
    limit = workspace.plan.max_schedules
    for i in range(limit):
        assert create(api_client, name=f"s{i}").status_code == 201
    details = error(create(api_client, name="one-too-many"), 402, "PLAN_LIMIT")
    assert details["limit"] == limit and details["plan"] == "free"
    assert Schedule.objects.count() == limit


@pytest.mark.parametrize(
    ("job", "field"),
    [({"retry_policy": {"max_attempts": 5}}, "max_attempts"), ({"timeout_ms": 60_000}, "timeout_ms")],
)
def test_plan_limit_on_template_values(api_client, pull_queue, job, field):
    details = error(create(api_client, job=job), 402, "PLAN_LIMIT")
    assert details["limit"] == {"max_attempts": 4, "timeout_ms": 30_000}[field]
    assert Schedule.objects.count() == 0


def test_template_values_outside_absolute_bounds_are_400(api_client, pull_queue):
    details = error(create(api_client, job={"retry_policy": {"max_attempts": 0}}), 400, "VALIDATION_ERROR")
    assert "job.retry_policy.max_attempts" in details


def test_template_values_within_plan(api_client, pull_queue, workspace):
    Plan.objects.filter(code="free").update(max_attempts=10)
    r = create(
        api_client, job={"retry_policy": {"max_attempts": 8, "backoff": "fixed"}, "timeout_ms": 10_000}
    )
    assert r.status_code == 201, r.content
    assert r.json()["job"]["retry_policy"] == {"max_attempts": 8, "backoff": "fixed"}


def test_list_get_and_isolation(api_client, other_workspace_client, pull_queue, other_queue):
    for name in ("b", "a", "c"):
        assert create(api_client, name=name).status_code == 201
    assert create(other_workspace_client, name="theirs").status_code == 201
    r = api_client.get("/v1/schedules?limit=2")
    assert r.status_code == 200
    assert [s["name"] for s in r.json()["data"]] == ["a", "b"]
    r2 = api_client.get(f"/v1/schedules?limit=2&cursor={r.json()['next_cursor']}")
    assert [s["name"] for s in r2.json()["data"]] == ["c"] and r2.json()["next_cursor"] is None
    assert api_client.get("/v1/schedules/a").json()["name"] == "a"
    error(api_client.get("/v1/schedules/theirs"), 404, "NOT_FOUND")
    error(api_client.get("/v1/schedules?limit=1001"), 400, "BAD_REQUEST")


ROUTES = [
    ("get", "/v1/schedules/{n}"),
    ("patch", "/v1/schedules/{n}"),
    ("delete", "/v1/schedules/{n}"),
    ("patch", "/v1/schedules/{n}/pause"),
    ("post", "/v1/schedules/{n}/pause"),
    ("patch", "/v1/schedules/{n}/resume"),
    ("post", "/v1/schedules/{n}/resume"),
    ("post", "/v1/schedules/{n}/trigger"),
    ("get", "/v1/schedules/{n}/runs"),
    ("get", "/v1/schedules/{n}/preview"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_isolation_matrix(api_client, other_workspace_client, anon_client, pull_queue, method, route):
    assert create(api_client).status_code == 201
    path = route.format(n="nightly-sync")
    error(getattr(other_workspace_client, method)(path, {}, format="json"), 404, "NOT_FOUND")
    error(getattr(anon_client, method)(path, {}, format="json"), 401, "UNAUTHORIZED")
    error(getattr(api_client, method)(route.format(n="missing"), {}, format="json"), 404, "NOT_FOUND")
    assert Schedule.objects.get().paused is False
    assert not Job.objects.exists()


def test_list_and_create_need_auth(anon_client):
    error(anon_client.get("/v1/schedules"), 401, "UNAUTHORIZED")
    error(anon_client.post("/v1/schedules", BASE, format="json"), 401, "UNAUTHORIZED")


def test_post_on_a_schedule_is_not_allowed(api_client, pull_queue):
    # PUT replaces a schedule (tests/api_gaps/test_runhooks.py); POST on one is still no method of it.
    assert create(api_client).status_code == 201
    error(api_client.post("/v1/schedules/nightly-sync", BASE, format="json"), 405, "METHOD_NOT_ALLOWED")


def test_patch_updates_and_recomputes_next_run(api_client, pull_queue):
    assert create(api_client).status_code == 201
    r = api_client.patch(
        "/v1/schedules/nightly-sync",
        {"interval_ms": 60_000, "description": "now hourly", "job": {"payload": {"x": 1}}},
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["cron"] is None and body["interval_ms"] == 60_000 and body["timezone"] is None
    assert body["description"] == "now hourly"
    # `job` merges key by key: the name and tags stay.
    assert (
        body["job"]["payload"] == {"x": 1}
        and body["job"]["name"] == "sync"
        and body["job"]["tags"] == ["nightly"]
    )
    s = Schedule.objects.get()
    assert s.interval_ms == 60_000 and s.cron is None
    r = api_client.patch(
        "/v1/schedules/nightly-sync", {"cron": "@hourly", "timezone": "America/New_York"}, format="json"
    )
    assert r.status_code == 200, r.content
    assert r.json()["cron"] == "0 * * * *" and r.json()["interval_ms"] is None
    assert r.json()["timezone"] == "America/New_York"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "nope"}, "cron"),
        ({"cron": None}, "cron"),
        ({"cron": "0 * * * *", "interval_ms": 5000}, "cron"),
        ({"interval_ms": 5000, "timezone": "UTC"}, "timezone"),
        ({"queue": "missing"}, "queue"),
        ({"last_run_at": None}, "last_run_at"),
        ({"bogus": 1}, "bogus"),
        ({"name": "bad/name"}, "name"),
    ],
)
def test_patch_validation(api_client, pull_queue, body, field):
    assert create(api_client).status_code == 201
    before = Schedule.objects.values().get()
    details = error(
        api_client.patch("/v1/schedules/nightly-sync", body, format="json"), 400, "VALIDATION_ERROR"
    )
    assert field in details
    assert Schedule.objects.values().get() == before


def test_patch_rename_conflict(api_client, pull_queue):
    assert create(api_client).status_code == 201
    assert create(api_client, name="other").status_code == 201
    error(api_client.patch("/v1/schedules/other", {"name": "nightly-sync"}, format="json"), 409, "CONFLICT")
    r = api_client.patch("/v1/schedules/other", {"name": "renamed"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert api_client.get("/v1/schedules/renamed").status_code == 200


@pytest.mark.parametrize("method", ["patch", "post"])
def test_pause_and_resume(api_client, pull_queue, method):
    assert create(api_client, cron=None, timezone=..., interval_ms=60_000).status_code == 201
    r = getattr(api_client, method)("/v1/schedules/nightly-sync/pause")
    assert r.status_code == 200, r.content
    assert r.json()["paused"] is True and r.json()["next_run_at"] is None
    assert Schedule.objects.get().paused is True
    assert getattr(api_client, method)("/v1/schedules/nightly-sync/pause").json()["paused"] is True
    r = getattr(api_client, method)("/v1/schedules/nightly-sync/resume")
    assert r.status_code == 200
    assert r.json()["paused"] is False and r.json()["next_run_at"] is not None
    assert Schedule.objects.get().paused is False
    error(
        api_client.post("/v1/schedules/nightly-sync/pause", {"x": 1}, format="json"), 400, "VALIDATION_ERROR"
    )


def test_delete(api_client, pull_queue):
    assert create(api_client).status_code == 201
    r = api_client.delete("/v1/schedules/nightly-sync")
    assert r.status_code == 204
    assert not Schedule.objects.exists()
    error(api_client.get("/v1/schedules/nightly-sync"), 404, "NOT_FOUND")


def test_trigger_enqueues_one_job_and_runs_lists_it(api_client, pull_queue, workspace):
    assert create(api_client).status_code == 201
    api_client.post("/v1/schedules/nightly-sync/pause")
    r = api_client.post("/v1/schedules/nightly-sync/trigger")
    assert r.status_code == 201, r.content
    job = r.json()["job"]
    assert job["queue"] == "sync" and job["name"] == "sync" and job["payload"] == {"full": True}
    assert job["tags"] == ["nightly"] and job["priority"] == 5 and job["state"] == "waiting"
    assert job["schedule"] == "nightly-sync"
    s = Schedule.objects.get()
    db_job = Job.objects.get()
    assert db_job.schedule_id == s.id and s.last_job_id == db_job.id and s.last_run_at is not None
    assert Event.objects.filter(type="schedule:fired", job_id=db_job.id, workspace=workspace).count() == 1
    second = api_client.post("/v1/schedules/nightly-sync/trigger").json()["job"]
    r = api_client.get("/v1/schedules/nightly-sync/runs")
    assert r.status_code == 200
    assert [j["id"] for j in r.json()["data"]] == [second["id"], job["id"]]
    assert all(j["schedule"] == "nightly-sync" for j in r.json()["data"])
    r = api_client.get("/v1/schedules/nightly-sync/runs?limit=1")
    assert [j["id"] for j in r.json()["data"]] == [second["id"]] and r.json()["next_cursor"]


def test_trigger_over_quota_is_402(api_client, pull_queue, workspace):
    assert create(api_client).status_code == 201
    Plan.objects.filter(code="free").update(jobs_per_month=0)
    error(api_client.post("/v1/schedules/nightly-sync/trigger"), 402, "QUOTA_EXCEEDED")
    assert not Job.objects.exists()
    assert Schedule.objects.get().last_job_id is None


def test_preview(api_client, pull_queue):
    assert create(api_client).status_code == 201
    r = api_client.get("/v1/schedules/nightly-sync/preview")
    assert r.status_code == 200
    data = r.json()["data"]
    assert len(data) == 5
    for item in data:
        local = datetime.fromisoformat(item["local"])
        at = datetime.fromisoformat(item["at"].replace("Z", "+00:00"))
        assert item["at"].endswith("Z") and local == at
        assert local.hour == 3 and local.minute == 0 and local.utcoffset().total_seconds() in (3600, 7200)
    assert len(api_client.get("/v1/schedules/nightly-sync/preview?count=100").json()["data"]) == 100
    for bad in ("0", "101", "x"):
        error(api_client.get(f"/v1/schedules/nightly-sync/preview?count={bad}"), 400, "BAD_REQUEST")


def test_preview_interval(api_client, pull_queue):
    assert create(api_client, cron=None, timezone=..., interval_ms=90_000).status_code == 201
    data = api_client.get("/v1/schedules/nightly-sync/preview?count=3").json()["data"]
    times = [datetime.fromisoformat(d["at"].replace("Z", "+00:00")) for d in data]
    assert [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)] == [90, 90]
    assert data[0]["local"].endswith("+00:00")
