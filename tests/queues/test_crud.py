from __future__ import annotations

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Plan
from queues.models import DEFAULT_RETRY_POLICY, Queue
from tests.factories import JobFactory

from .conftest import PUBLIC_URL

pytestmark = pytest.mark.django_db


def test_create_push_queue_returns_full_shape_and_secret_once(api_client, workspace):
    response = api_client.post(
        "/v1/queues", {"name": "emails", "endpoint": {"url": PUBLIC_URL}}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body.pop("signing_secret")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert set(body) == {
        "name",
        "delivery",
        "endpoint",
        "paused",
        "paused_job_names",
        "concurrency",
        "group_concurrency",
        "rate_limit",
        "retry_policy",
        "lease_ms",
        "counts",
        "created_at",
        "updated_at",
    }
    assert body["delivery"] == "push"
    assert body["endpoint"] == {"url": PUBLIC_URL, "method": "POST", "headers": {}, "timeout_ms": 30000}
    assert body["retry_policy"] == DEFAULT_RETRY_POLICY
    assert body["concurrency"] == 10 and body["lease_ms"] == 300000
    assert body["group_concurrency"] is None and body["rate_limit"] is None
    assert body["paused"] is False and body["paused_job_names"] == []
    assert body["counts"] == {
        "waiting": 0,
        "delayed": 0,
        "active": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert body["created_at"].endswith("Z")
    queue = Queue.objects.get(workspace=workspace, name="emails")
    assert queue.signing_secret == secret

    # Never again: not on get, list or update.
    for got in (
        api_client.get("/v1/queues/emails").json(),
        api_client.get("/v1/queues").json()["data"][0],
        api_client.patch("/v1/queues/emails", {"concurrency": 3}, format="json").json(),
    ):
        assert "signing_secret" not in got
        assert secret not in str(got)


def test_create_pull_queue_with_all_fields(api_client, workspace):
    body = {
        "name": "work.v2:high-prio_1",
        "delivery": "pull",
        "endpoint": None,
        "concurrency": 50,
        "group_concurrency": 2,
        "rate_limit": {"max": 100, "per_ms": 1000},
        "retry_policy": {"max_attempts": 3, "backoff": "fixed", "multiplier": 1.5},
        "lease_ms": 60000,
    }
    response = api_client.post("/v1/queues", body, format="json")
    assert response.status_code == 201, response.content
    got = response.json()
    assert got["delivery"] == "pull" and got["endpoint"] is None
    assert got["group_concurrency"] == 2 and got["rate_limit"] == {"max": 100, "per_ms": 1000}
    # Partial retry policy merged over the defaults.
    assert got["retry_policy"] == {
        **DEFAULT_RETRY_POLICY,
        "max_attempts": 3,
        "backoff": "fixed",
        "multiplier": 1.5,
    }
    queue = Queue.objects.get(workspace=workspace, name="work.v2:high-prio_1")
    assert queue.lease_ms == 60000 and queue.concurrency == 50


def test_duplicate_name_is_409(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.post("/v1/queues", {"name": "emails", "delivery": "pull"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert Queue.objects.filter(workspace=workspace).count() == 1


def test_same_name_in_other_workspace_is_fine(post_queue, other_workspace_client):
    post_queue("emails")
    response = other_workspace_client.post(
        "/v1/queues", {"name": "emails", "delivery": "pull"}, format="json"
    )
    assert response.status_code == 201
    assert Queue.objects.filter(name="emails").count() == 2


def test_unknown_queue_is_404(api_client):
    for method, path in [
        ("get", "/v1/queues/nope"),
        ("patch", "/v1/queues/nope"),
        ("delete", "/v1/queues/nope"),
    ]:
        response = getattr(api_client, method)(path, {}, format="json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_list_with_counts_and_pagination(api_client, post_queue, workspace):
    for name in ("a", "b", "c"):
        post_queue(name)
    q = Queue.objects.get(workspace=workspace, name="b")
    for state, n in {
        "waiting": 3,
        "delayed": 1,
        "active": 2,
        "completed": 4,
        "failed": 1,
        "cancelled": 2,
    }.items():
        for _ in range(n):
            JobFactory(queue=q, state=state)
    response = api_client.get("/v1/queues?limit=2")
    assert response.status_code == 200
    page = response.json()
    assert [x["name"] for x in page["data"]] == ["c", "b"]
    assert page["data"][1]["counts"] == {
        "waiting": 3,
        "delayed": 1,
        "active": 2,
        "completed": 4,
        "failed": 1,
        "cancelled": 2,
    }
    assert page["data"][0]["counts"]["waiting"] == 0
    assert page["next_cursor"]
    page2 = api_client.get(f"/v1/queues?limit=2&cursor={page['next_cursor']}").json()
    assert [x["name"] for x in page2["data"]] == ["a"] and page2["next_cursor"] is None
    assert api_client.get("/v1/queues/b").json()["counts"]["completed"] == 4


def test_list_query_count_does_not_grow_with_queues(api_client, post_queue, workspace, plans):
    workspace.plan = plans["team"]
    workspace.save()

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = api_client.get("/v1/queues")
        assert response.status_code == 200
        return len(ctx.captured_queries)

    post_queue("q0", delivery="pull", endpoint=None)
    JobFactory(queue=Queue.objects.get(workspace=workspace, name="q0"), state="waiting")
    with_one = list_queries()
    for i in range(1, 8):
        queue = Queue.objects.get(
            workspace=workspace, name=post_queue(f"q{i}", delivery="pull", endpoint=None)["name"]
        )
        JobFactory(queue=queue, state="completed")
        JobFactory(queue=queue, state="waiting")
    # The page and one GROUP BY for all counts, whatever the number of queues or states.
    assert list_queries() == with_one
    data = api_client.get("/v1/queues").json()["data"]
    assert len(data) == 8 and all(q["counts"]["waiting"] == 1 for q in data)


def test_list_limit_over_max_is_400(api_client):
    response = api_client.get("/v1/queues?limit=1001")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_patch_updates_fields_and_merges_retry_policy(api_client, post_queue, workspace):
    post_queue("emails", retry_policy={"backoff": "fixed"})
    response = api_client.patch(
        "/v1/queues/emails",
        {
            "concurrency": 7,
            "retry_policy": {"max_attempts": 2},
            "endpoint": {
                "url": PUBLIC_URL,
                "method": "PUT",
                "headers": {"X-Api-Key": "s"},
                "timeout_ms": 5000,
            },
            "rate_limit": {"max": 5, "per_ms": 60000},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["retry_policy"]["backoff"] == "fixed" and body["retry_policy"]["max_attempts"] == 2
    queue = Queue.objects.get(workspace=workspace, name="emails")
    assert queue.concurrency == 7
    assert queue.endpoint == {
        "url": PUBLIC_URL,
        "method": "PUT",
        "headers": {"X-Api-Key": "s"},
        "timeout_ms": 5000,
    }
    assert queue.rate_limit == {"max": 5, "per_ms": 60000}


def test_patch_cannot_change_delivery(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.patch("/v1/queues/emails", {"delivery": "pull", "endpoint": None}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "delivery" in response.json()["error"]["details"]
    assert Queue.objects.get(workspace=workspace, name="emails").delivery == "push"
    # Restating the current mode is fine; a push queue may drop its endpoint (jobs then bring `http`).
    response = api_client.patch("/v1/queues/emails", {"delivery": "push", "endpoint": None}, format="json")
    assert response.status_code == 200
    assert Queue.objects.get(workspace=workspace, name="emails").endpoint is None


def test_pull_queue_cannot_get_an_endpoint(api_client, post_queue, workspace):
    post_queue("jobs", delivery="pull", endpoint=None)
    response = api_client.patch("/v1/queues/jobs", {"endpoint": {"url": PUBLIC_URL}}, format="json")
    assert response.status_code == 400
    assert "endpoint" in response.json()["error"]["details"]
    assert Queue.objects.get(workspace=workspace, name="jobs").endpoint is None


def test_patch_cannot_rename(api_client, post_queue, workspace):
    post_queue("emails")
    response = api_client.patch("/v1/queues/emails", {"name": "other"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["name"]
    assert Queue.objects.filter(workspace=workspace, name="emails").exists()


def test_patch_endpoint_without_url_is_400(api_client, post_queue):
    post_queue("emails")
    response = api_client.patch("/v1/queues/emails", {"endpoint": {"method": "PUT"}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["endpoint"]["url"]


BAD_BODIES = [
    ({"name": ""}, "name"),
    ({"name": "-starts-with-dash"}, "name"),
    ({"name": "has space"}, "name"),
    ({"name": "a" * 65}, "name"),
    ({"name": "slash/name"}, "name"),
    ({"name": 123}, "name"),
    ({"delivery": "carrier-pigeon"}, "delivery"),
    ({"delivery": "pull", "endpoint": {"url": PUBLIC_URL}}, "endpoint"),
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": 10001}, "concurrency"),
    ({"concurrency": "10"}, "concurrency"),
    ({"concurrency": True}, "concurrency"),
    ({"group_concurrency": 0}, "group_concurrency"),
    ({"group_concurrency": 10001}, "group_concurrency"),
    ({"lease_ms": 999}, "lease_ms"),
    ({"lease_ms": 3600001}, "lease_ms"),
    ({"rate_limit": {"max": 0, "per_ms": 1000}}, "rate_limit"),
    ({"rate_limit": {"max": 100001, "per_ms": 1000}}, "rate_limit"),
    ({"rate_limit": {"max": 1, "per_ms": 0}}, "rate_limit"),
    ({"rate_limit": {"max": 1, "per_ms": 86400001}}, "rate_limit"),
    ({"rate_limit": {"max": 1}}, "rate_limit"),
    ({"rate_limit": {"max": 1, "per_ms": 1, "burst": 2}}, "rate_limit"),
    ({"retry_policy": {"max_attempts": 0}}, "retry_policy"),
    ({"retry_policy": {"max_attempts": 101}}, "retry_policy"),
    ({"retry_policy": {"initial_delay_ms": -1}}, "retry_policy"),
    ({"retry_policy": {"initial_delay_ms": 86400001}}, "retry_policy"),
    ({"retry_policy": {"multiplier": 0.5}}, "retry_policy"),
    ({"retry_policy": {"multiplier": 11}}, "retry_policy"),
    ({"retry_policy": {"multiplier": "2"}}, "retry_policy"),
    ({"retry_policy": {"max_delay_ms": 604800001}}, "retry_policy"),
    ({"retry_policy": {"backoff": "linear"}}, "retry_policy"),
    ({"retry_policy": {"jitter": "yes"}}, "retry_policy"),
    ({"retry_policy": {"unknown": 1}}, "retry_policy"),
    ({"retry_policy": None}, "retry_policy"),
    ({"endpoint": {"url": PUBLIC_URL, "timeout_ms": 99}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "timeout_ms": 300001}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "method": "HEAD"}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"Host": "evil"}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"content-length": "1"}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"Connection": "close"}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"Transfer-Encoding": "chunked"}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"X-A": 1}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"X-A": "a\r\nB: c"}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {"bad header": "x"}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": {f"X-{i}": "v" for i in range(51)}}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "headers": ["X-A"]}}, "endpoint"),
    ({"endpoint": {"url": PUBLIC_URL, "extra": 1}}, "endpoint"),
    ({"endpoint": {"url": "ftp://93.184.215.14/x"}}, "endpoint"),
    ({"endpoint": {"url": "https://user:pw@93.184.215.14/x"}}, "endpoint"),
    ({"endpoint": {"url": "https:///nohost"}}, "endpoint"),
    ({"endpoint": {"url": "https://" + "a" * 2050 + ".com/"}}, "endpoint"),
    ({"endpoint": {}}, "endpoint"),
    ({"counts": {"waiting": 1}}, "counts"),
    ({"created_at": "2026-01-01T00:00:00Z"}, "created_at"),
    ({"updated_at": "2026-01-01T00:00:00Z"}, "updated_at"),
    ({"signing_secret": "whsec_x"}, "signing_secret"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("patch", "field"), BAD_BODIES)
def test_create_validation(api_client, workspace, patch, field):
    body = {"name": "emails", **patch}
    response = api_client.post("/v1/queues", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert not Queue.objects.filter(workspace=workspace).exists()


@pytest.mark.parametrize(
    ("patch", "field"), [p for p in BAD_BODIES if p[1] != "name" and "delivery" not in p[0]]
)
def test_patch_validation(api_client, post_queue, workspace, patch, field):
    post_queue("emails")
    before = Queue.objects.get(workspace=workspace, name="emails")
    response = api_client.patch("/v1/queues/emails", patch, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    after = Queue.objects.get(pk=before.pk)
    assert (after.endpoint, after.retry_policy, after.concurrency, after.updated_at) == (
        before.endpoint,
        before.retry_policy,
        before.concurrency,
        before.updated_at,
    )


def test_name_is_required(api_client):
    response = api_client.post("/v1/queues", {"delivery": "pull"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["name"]


def test_form_body_is_415(api_client, workspace):
    response = api_client.post("/v1/queues", {"name": "emails"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_non_object_body_is_400(api_client):
    response = api_client.post("/v1/queues", ["emails"], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


# --- plan caps -----------------------------------------------------------------------------------------------
def test_free_plan_sixth_queue_is_402(api_client, post_queue, workspace):
    for i in range(5):
        post_queue(f"q{i}", delivery="pull", endpoint=None)
    response = api_client.post("/v1/queues", {"name": "q5", "delivery": "pull"}, format="json")
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "PLAN_LIMIT"
    assert error["details"]["limit"] == 5 and error["details"]["plan"] == "free"
    assert Queue.objects.filter(workspace=workspace).count() == 5


def test_plan_max_attempts_is_402_but_absolute_bound_is_400(api_client, workspace):
    response = api_client.post(
        "/v1/queues", {"name": "a", "retry_policy": {"max_attempts": 5}}, format="json"
    )
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "PLAN_LIMIT"
    assert response.json()["error"]["details"]["limit"] == 4
    response = api_client.post(
        "/v1/queues", {"name": "a", "retry_policy": {"max_attempts": 4}}, format="json"
    )
    assert response.status_code == 201
    response = api_client.patch("/v1/queues/a", {"retry_policy": {"max_attempts": 10}}, format="json")
    assert response.status_code == 402
    assert Queue.objects.get(workspace=workspace, name="a").retry_policy["max_attempts"] == 4


def test_plan_timeout_is_402(api_client, workspace):
    body = {"name": "a", "endpoint": {"url": PUBLIC_URL, "timeout_ms": 30001}}
    response = api_client.post("/v1/queues", body, format="json")
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "PLAN_LIMIT"
    assert response.json()["error"]["details"] == {"limit": 30000, "plan": "free", "field": "timeout_ms"}
    assert not Queue.objects.filter(workspace=workspace).exists()
    # A bigger plan lifts the cap.
    workspace.plan = Plan.objects.get(code="team")
    workspace.save()
    body["endpoint"]["timeout_ms"] = 300000
    assert api_client.post("/v1/queues", body, format="json").status_code == 201
