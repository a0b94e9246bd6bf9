"""Seed 003 (Runhooks) gaps: schedule list filters, PUT on a schedule, HEAD and OPTIONS on routes."""

from __future__ import annotations

import pytest

from schedules.models import Schedule
from tests.factories import make_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def schedules(api_client, workspace):
    make_queue(workspace, "sync")
    bodies = [
        {
            "name": "nightly-report",
            "queue": "sync",
            "cron": "0 3 * * *",
            "job": {"tags": ["prod", "reports"]},
        },
        {"name": "Hourly-Cache", "queue": "sync", "interval_ms": 3_600_000, "job": {"tags": ["prod"]}},
        {
            "name": "weekly-cleanup",
            "queue": "sync",
            "cron": "@weekly",
            "paused": True,
            "job": {"tags": ["ops"]},
        },
    ]
    for body in bodies:
        response = api_client.post("/v1/schedules", body, format="json")
        assert response.status_code == 201, response.content
    return [b["name"] for b in bodies]


def _names(client, query: str) -> list[str]:
    response = client.get(f"/v1/schedules{query}")
    assert response.status_code == 200, response.content
    return [s["name"] for s in response.json()["data"]]


def test_schedule_list_filters(api_client, schedules):
    assert _names(api_client, "") == ["Hourly-Cache", "nightly-report", "weekly-cleanup"]
    assert _names(api_client, "?status=active") == ["Hourly-Cache", "nightly-report"]
    assert _names(api_client, "?status=paused") == ["weekly-cleanup"]
    assert _names(api_client, "?tag=prod") == ["Hourly-Cache", "nightly-report"]
    assert _names(api_client, "?tag=reports") == ["nightly-report"]
    assert _names(api_client, "?tag=nope") == []
    assert _names(api_client, "?name=CACHE") == ["Hourly-Cache"]
    assert _names(api_client, "?name=ly-") == ["Hourly-Cache", "nightly-report", "weekly-cleanup"]
    assert _names(api_client, "?name=.*") == []  # a literal substring, not a regex
    assert _names(api_client, "?status=active&tag=prod&name=night") == ["nightly-report"]


def test_schedule_list_filters_paginate(api_client, schedules):
    page = api_client.get("/v1/schedules?tag=prod&limit=1").json()
    assert [s["name"] for s in page["data"]] == ["Hourly-Cache"]
    rest = api_client.get(f"/v1/schedules?tag=prod&limit=1&cursor={page['next_cursor']}").json()
    assert [s["name"] for s in rest["data"]] == ["nightly-report"]


@pytest.mark.parametrize(
    "query", ["?status=completed", "?status=bogus", "?name=" + "x" * 101, "?tag=" + "t" * 65]
)
def test_schedule_list_bad_filters_are_400(api_client, schedules, query):
    response = api_client.get(f"/v1/schedules{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_schedule_list_filters_stay_in_the_workspace(other_workspace_client, schedules):
    assert _names(other_workspace_client, "?tag=prod") == []


# --- PUT /v1/schedules/{name} ----------------------------------------------------------------------


def test_put_replaces_the_whole_schedule(api_client, workspace, schedules):
    make_queue(workspace, "other")
    before = api_client.get("/v1/schedules/nightly-report").json()
    body = {"queue": "other", "interval_ms": 60_000, "job": {"payload": {"x": 1}}}
    response = api_client.put("/v1/schedules/nightly-report", body, format="json")
    assert response.status_code == 200, response.content
    after = response.json()
    assert after["name"] == "nightly-report" and after["queue"] == "other"
    assert after["cron"] is None and after["interval_ms"] == 60_000 and after["timezone"] is None
    # Full replace: the tags of the old template are gone, defaults come back.
    assert after["job"]["tags"] == [] and after["job"]["payload"] == {"x": 1}
    assert after["overlap"] == "allow" and after["paused"] is False and after["description"] == ""
    assert after["created_at"] == before["created_at"]
    assert after["next_run_at"] != before["next_run_at"]
    stored = Schedule.objects.get(workspace=workspace, name="nightly-report")
    assert stored.interval_ms == 60_000 and stored.cron is None and stored.job == {"payload": {"x": 1}}


def test_put_renames_and_conflicts(api_client, schedules):
    renamed = api_client.put(
        "/v1/schedules/nightly-report", {"name": "daily", "queue": "sync", "cron": "0 4 * * *"}, format="json"
    )
    assert renamed.status_code == 200, renamed.content
    assert api_client.get("/v1/schedules/daily").status_code == 200
    assert api_client.get("/v1/schedules/nightly-report").status_code == 404
    taken = api_client.put(
        "/v1/schedules/daily", {"name": "weekly-cleanup", "queue": "sync", "cron": "@daily"}, format="json"
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "CONFLICT"


@pytest.mark.parametrize(
    "body",
    [
        {"queue": "sync"},  # neither cron nor interval: a create would refuse it too
        {"cron": "0 3 * * *"},  # no queue and no job.http
        {"queue": "sync", "cron": "0 3 * * *", "interval_ms": 60000},
        {"queue": "sync", "cron": "0 3 * * *", "next_run_at": "2030-01-01T00:00:00Z"},
        {"queue": "sync", "cron": "0 3 * * *", "bogus": 1},
    ],
)
def test_put_validates_like_create(api_client, schedules, body):
    before = Schedule.objects.get(name="nightly-report")
    response = api_client.put("/v1/schedules/nightly-report", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    after = Schedule.objects.get(name="nightly-report")
    assert (after.cron, after.job, after.queue_id) == (before.cron, before.job, before.queue_id)


def test_put_on_another_workspaces_schedule_is_404(other_workspace_client, schedules):
    response = other_workspace_client.put(
        "/v1/schedules/nightly-report", {"interval_ms": 60000}, format="json"
    )
    assert response.status_code == 404


# --- HEAD and OPTIONS ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/schedules", "/v1/schedules/nightly-report", "/v1/queues", "/v1/jobs"])
def test_head_answers_like_get_without_a_body(api_client, schedules, path):
    get = api_client.get(path)
    head = api_client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]
    assert "X-RateLimit-Limit" in head


def test_head_of_an_unknown_object_is_404(api_client, schedules):
    assert api_client.head("/v1/schedules/nope").status_code == 404


def test_head_without_a_key_is_401(anon_client):
    assert anon_client.head("/v1/schedules").status_code == 401


def test_options_lists_the_allowed_methods(api_client, schedules):
    response = api_client.options("/v1/schedules/nightly-report")
    assert response.status_code == 200
    allowed = {m.strip() for m in response["Allow"].split(",")}
    assert {"GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} <= allowed
    assert "POST" not in allowed


def test_options_without_a_key_is_401_and_leaks_nothing(anon_client, schedules):
    response = anon_client.options("/v1/schedules/nightly-report")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert "nightly-report" not in response.content.decode()


def test_options_body_names_methods_only(api_client, schedules):
    response = api_client.options("/v1/schedules")
    body = response.json()
    assert set(body) == {"methods"}
    assert set(body["methods"]) == {"GET", "POST", "HEAD", "OPTIONS"}
    assert {m.strip() for m in response["Allow"].split(",")} == set(body["methods"])


def test_options_on_a_public_route_needs_no_key(anon_client):
    response = anon_client.options("/v1/auth/login")
    assert response.status_code == 200
    assert "POST" in response["Allow"]


def test_options_of_an_unknown_route_is_404(anon_client):
    response = anon_client.options("/v1/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
