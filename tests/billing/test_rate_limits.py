import time

import pytest

from accounts.services import workspace_create
from tests.conftest import make_client
from tests.ratewindow import fresh_window

pytestmark = pytest.mark.django_db


def test_authenticated_responses_carry_rate_limit_headers(workspace, api_client):
    fresh_window(workspace.id)
    before = int(time.time())
    response = api_client.get("/v1/auth/me")
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "60"
    assert response["X-RateLimit-Remaining"] == "59"
    assert before <= int(response["X-RateLimit-Reset"]) <= before + 61
    assert api_client.get("/v1/keys")["X-RateLimit-Remaining"] == "58"
    # Errors of authenticated requests carry them too.
    missing = api_client.delete("/v1/keys/key_0000")
    assert missing.status_code == 404 and missing["X-RateLimit-Remaining"] == "57"


def test_unauthenticated_responses_have_no_rate_limit_headers(anon_client, plans):
    response = anon_client.get("/v1/auth/me")
    assert response.status_code == 401
    assert not response.has_header("X-RateLimit-Limit")


def test_free_workspace_gets_60_requests_a_minute(workspace, api_client, other_workspace_client):
    fresh_window(workspace.id)
    codes = [api_client.get("/v1/auth/me").status_code for _ in range(65)]
    assert codes == [200] * 60 + [429] * 5
    response = api_client.get("/v1/status")
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["X-RateLimit-Remaining"] == "0" and response["X-RateLimit-Limit"] == "60"
    # Another workspace has its own budget.
    assert other_workspace_client.get("/v1/auth/me").status_code == 200


def test_the_limit_follows_the_plan(plans):
    _, issued = workspace_create(name="pro", plan_code="pro")
    response = make_client(issued.raw).get("/v1/auth/me")
    assert response["X-RateLimit-Limit"] == "300"


def test_enterprise_is_unlimited(plans):
    _, issued = workspace_create(name="big", plan_code="enterprise")
    client = make_client(issued.raw)
    assert all(client.get("/v1/auth/me").status_code == 200 for _ in range(70))
    body = client.get("/v1/status").json()
    assert body["rate_limit"] == {"limit": None, "remaining": None}


def test_keys_of_one_workspace_share_its_budget(workspace, api_client):
    fresh_window(workspace.id)
    extra = api_client.post("/v1/keys", {"name": "second"}, format="json").json()["api_key"]
    second = make_client(extra)
    codes = [(api_client if i % 2 else second).get("/v1/auth/me").status_code for i in range(61)]
    assert codes.count(200) == 59 and codes.count(429) == 2  # the POST above used one request
