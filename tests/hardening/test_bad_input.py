"""Issue 9 items 2 and 3: inputs that used to crash (500) or poison the engine answer 4xx in the envelope."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import IntegrityError

from jobs.models import Job
from queues.services import queue_create
from schedules.models import Schedule

from .conftest import assert_envelope, post_raw

JOBS = "/v1/queues/emails/jobs"

pytestmark = pytest.mark.django_db


# --- item 2: dates outside 1970..9999 (after timezone conversion) are refused and nothing is stored -----------
BAD_DATES = [
    "0001-01-01T00:00:00+14:00",  # year 0 in UTC: Python's datetime cannot even hold it
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:59:59-12:00",  # year 10000 in UTC
]


@pytest.mark.parametrize("run_at", BAD_DATES)
def test_enqueue_run_at_out_of_range_is_400_and_nothing_stored(api_client, queue, run_at):
    error = assert_envelope(api_client.post(JOBS, {"run_at": run_at}, format="json"), 400, "VALIDATION_ERROR")
    assert "run_at" in error["details"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("run_at", BAD_DATES)
def test_batch_run_at_out_of_range_is_400(api_client, queue, run_at):
    body = {"jobs": [{"payload": 1}, {"run_at": run_at}]}
    error = assert_envelope(api_client.post(f"{JOBS}/batch", body, format="json"), 400, "VALIDATION_ERROR")
    assert "jobs.1.run_at" in error["details"]
    assert not Job.objects.exists()


def test_enqueue_run_at_in_range_still_accepted(api_client, queue):
    response = api_client.post(JOBS, {"run_at": "9999-12-31T00:00:00Z"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "delayed"


def _job(api_client) -> str:
    response = api_client.post(JOBS, {"payload": {"a": 1}, "delay_ms": 60_000}, format="json")
    assert response.status_code == 201
    return response.json()["id"]


@pytest.mark.parametrize("run_at", [*BAD_DATES, "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "nope"])
def test_patch_run_at_invalid_or_out_of_range_is_400(api_client, queue, run_at):
    job_id = _job(api_client)
    before = Job.objects.get(id=job_id).run_at
    error = assert_envelope(
        api_client.patch(f"{JOBS}/{job_id}", {"run_at": run_at}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert "run_at" in error["details"]
    assert Job.objects.get(id=job_id).run_at == before


@pytest.mark.parametrize(
    "query",
    [
        "from=0001-01-01T00:00:00%2B14:00",
        "to=0001-01-01T00:00:00Z",
        "from=0001-01-01T00:00:00Z&to=0001-01-01T00:30:00Z",
        "to=9999-12-31T23:59:59-12:00",
        "from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:59Z",
        "granularity=hour&to=0001-01-01T00:00:00Z",
    ],
)
def test_metrics_extreme_from_to_is_400(api_client, queue, query):
    response = api_client.get(f"/v1/queues/emails/metrics?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("BAD_REQUEST", "VALIDATION_ERROR")


@pytest.mark.parametrize("period", ["9999-12", "0001-01", "2026-00"])
def test_usage_extreme_period_is_400(api_client, period):
    assert_envelope(api_client.get(f"/v1/usage?period={period}"), 400, "BAD_REQUEST")


# --- item 3: NUL bytes, lone surrogates, deep nesting ---------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"payload": {"a": "x\\u0000y"}}', "payload.a"),
        ('{"payload": {"a\\u0000": 1}}', "payload"),
        ('{"payload": ["ok", "\\u0000"]}', "payload.1"),
        ('{"name": "a\\u0000b"}', "name"),
        ('{"tags": ["t\\u0000"]}', "tags.0"),
        ('{"group": "\\u0000"}', "group"),
    ],
)
def test_nul_in_job_strings_is_400_naming_the_field(api_client, queue, body, field):
    error = assert_envelope(post_raw(api_client, JOBS, body), 400, "VALIDATION_ERROR")
    assert field in error["details"], error
    assert not Job.objects.exists()


def test_nul_in_batch_item_is_400(api_client, queue):
    body = '{"jobs": [{"payload": 1}, {"payload": {"k": "\\u0000"}}]}'
    error = assert_envelope(post_raw(api_client, f"{JOBS}/batch", body), 400, "VALIDATION_ERROR")
    assert "jobs.1.payload.k" in error["details"], error


@pytest.mark.parametrize(
    "body",
    [
        '{"payload": "\\ud800"}',
        '{"payload": {"\\udfff": 1}}',
        '{"name": "x\\udc00"}',
        '{"payload": "\\ud800x\\udc00"}',
    ],
)
def test_lone_surrogate_is_400(api_client, queue, body):
    assert_envelope(post_raw(api_client, JOBS, body), 400, "VALIDATION_ERROR")
    assert not Job.objects.exists()


def test_surrogate_pair_is_a_normal_character(api_client, queue):
    response = post_raw(api_client, JOBS, '{"payload": "\\ud83d\\ude00"}')
    assert response.status_code == 201, response.content
    assert response.json()["payload"] == "\U0001f600"


@pytest.mark.parametrize("depth", [100_000, 5_000, 990, 200])
def test_deep_json_is_400(api_client, queue, depth):
    body = '{"payload": ' + "[" * depth + "]" * depth + "}"
    assert_envelope(post_raw(api_client, JOBS, body), 400, "BAD_REQUEST")
    assert not Job.objects.exists()


def test_moderate_nesting_is_accepted(api_client, queue):
    body = '{"payload": ' + '{"a": ' * 30 + "1" + "}" * 30 + "}"
    assert post_raw(api_client, JOBS, body).status_code == 201


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/queues", '{"name": "q", "delivery": "pull", "endpoint": null, "x\\u0000": 1}'),
        ("/v1/queues", '{"name": "q\\u0000"}'),
        (
            "/v1/schedules",
            '{"name": "s", "queue": "emails", "interval_ms": 60000, "job": {"payload": "\\u0000"}}',
        ),
        ("/v1/workers", '{"name": "w\\u0000", "queues": ["emails"]}'),
        ("/v1/queues/emails/pause", '{"job_name": "\\u0000"}'),
    ],
)
def test_nul_anywhere_in_the_api_is_400(api_client, queue, path, body):
    assert_envelope(post_raw(api_client, path, body), 400, "VALIDATION_ERROR")


def test_patch_payload_with_nul_is_400(api_client, queue):
    job_id = _job(api_client)
    body = '{"payload": {"a": "\\u0000"}, "tags": ["ok"]}'
    error = assert_envelope(
        post_raw(api_client, f"{JOBS}/{job_id}", body, method="patch"), 400, "VALIDATION_ERROR"
    )
    assert "payload.a" in error["details"]
    assert Job.objects.get(id=job_id).payload == {"a": 1}


# --- item 3: bad cursors and absurd integers -------------------------------------------------------------------
@pytest.mark.parametrize("cursor", ["AA", "AAAA", "_w", "%00", "AQ", "am9iAA"])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/queues/emails/jobs",
        "/v1/jobs",
        "/v1/queues",
        "/v1/schedules",
        "/v1/executions",
        "/v1/keys",
        "/v1/workers",
        "/v1/alerts",
        "/v1/webhooks",
        "/v1/queues/emails/dlq",
    ],
)
def test_bad_cursor_is_400(api_client, queue, path, cursor):
    assert_envelope(api_client.get(f"{path}?cursor={cursor}"), 400, "BAD_REQUEST")


def test_good_cursor_still_pages(api_client, queue):
    for _ in range(3):
        _job(api_client)
    first = api_client.get(f"{JOBS}?limit=2").json()
    assert first["next_cursor"]
    second = api_client.get(f"{JOBS}?limit=2&cursor={first['next_cursor']}").json()
    assert len(second["data"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"state": "completed", "grace_ms": 10**18},
        {"state": "completed", "grace_ms": 10**30},
        {"state": "completed", "grace_ms": 1e18},
        {"state": "completed", "limit": 10**30},
    ],
)
def test_clean_absurd_numbers_is_400(api_client, queue, body):
    error = assert_envelope(
        api_client.post("/v1/queues/emails/clean", body, format="json"), 400, "VALIDATION_ERROR"
    )
    assert set(error["details"]) & {"grace_ms", "limit"}


def test_schedule_preview_absurd_count_is_400(api_client, queue):
    api_client.post("/v1/schedules", {"name": "s", "queue": "emails", "interval_ms": 60000}, format="json")
    assert_envelope(api_client.get("/v1/schedules/s/preview?count=" + "9" * 5000), 400, "BAD_REQUEST")


# --- item 3: duplicate schedule name maps to 409 by constraint name, on SQLite too ---------------------------
def test_duplicate_schedule_name_is_409(api_client, queue):
    body = {"name": "nightly", "queue": "emails", "interval_ms": 60000}
    assert api_client.post("/v1/schedules", body, format="json").status_code == 201
    assert_envelope(api_client.post("/v1/schedules", body, format="json"), 409, "CONFLICT")
    assert Schedule.objects.filter(name="nightly").count() == 1


def _sqlite_unique_violation() -> IntegrityError:
    """The IntegrityError Django raises on SQLite for the schedules name constraint (real SQLite message)."""
    db = sqlite3.connect(":memory:")
    db.execute(
        'CREATE TABLE "schedules_schedule" ("id" text PRIMARY KEY, "workspace_id" text, "name" text,'
        ' CONSTRAINT "schedules_schedule_ws_name_uniq" UNIQUE ("workspace_id", "name"))'
    )
    db.execute("INSERT INTO schedules_schedule VALUES ('1', 'ws', 'n')")
    try:
        db.execute("INSERT INTO schedules_schedule VALUES ('2', 'ws', 'n')")
    except sqlite3.IntegrityError as exc:
        try:
            raise IntegrityError(*exc.args) from exc
        except IntegrityError as wrapped:
            return wrapped
    raise AssertionError("SQLite accepted a duplicate")


def test_integrity_error_maps_by_constraint_name_on_sqlite():
    from config.exceptions import violated_constraint

    exc = _sqlite_unique_violation()
    assert "schedules_schedule_ws_name_uniq" not in str(exc)  # SQLite names the columns only
    assert violated_constraint(exc, Schedule) == "schedules_schedule_ws_name_uniq"


def test_schedule_name_conflict_on_sqlite_message_is_409():
    from schedules.services import _name_conflict

    conflict = _name_conflict(_sqlite_unique_violation(), "n")
    assert conflict is not None and conflict.status_code == 409 and conflict.code == "CONFLICT"


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "1\r\nInjected: yes"}, {"Bad Name": "1"}, {"Host": "evil.example"}, {"X-Long": "v" * 9000}],
)
def test_job_http_headers_follow_the_endpoint_header_rules(api_client, workspace, headers):
    queue_create(workspace=workspace, data={"name": "hooks", "delivery": "push"})
    body = {"http": {"url": "https://192.0.2.10/hook", "headers": headers}}
    error = assert_envelope(
        api_client.post("/v1/queues/hooks/jobs", body, format="json"), 400, "VALIDATION_ERROR"
    )
    assert "http.headers" in error["details"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/v1/queues/a%00b",
        "/v1/schedules/%00",
        "/v1/queues/emails/jobs?tag=%00",
        "/v1/search?q=a%00&type=queue",
    ],
)
def test_nul_in_url_is_400(api_client, queue, url):
    assert_envelope(api_client.get(url), 400, "BAD_REQUEST")
