"""Seed 001 (Spooled) gap: `POST /v1/auth/login` with an API key returns JWTs acting on that key's workspace."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_revoke, api_key_rotate_primary, user_register, workspace_create
from tests.factories import make_queue

pytestmark = pytest.mark.django_db


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _login(client, body):
    return client.post("/v1/auth/login", body, format="json")


def test_anonymous_workspace_key_logs_in(anon_client, plans):
    workspace, issued = workspace_create(name="anon", is_anonymous=True)
    make_queue(workspace, "work")
    response = _login(anon_client, {"api_key": issued.raw})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"] is None
    assert body["workspace"]["id"] == workspace.id
    access = _bearer(body["tokens"]["access"])
    queues = access.get("/v1/queues")
    assert queues.status_code == 200
    assert [q["name"] for q in queues.json()["data"]] == ["work"]
    me = access.get("/v1/auth/me").json()
    assert me["workspace"]["id"] == workspace.id and me["user"] is None and me["auth"] == "jwt"


def test_user_workspace_key_logs_in_as_that_workspace(anon_client, plans):
    registration = user_register(email="ada@example.com", password="correct horse", name="Ada")
    response = _login(anon_client, {"api_key": registration.key.raw})
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["workspace"]["id"] == registration.workspace.id
    assert (
        _bearer(body["tokens"]["access"]).get("/v1/status").json()["workspace"]["id"]
        == registration.workspace.id
    )


def test_key_tokens_refresh_and_rotate(anon_client, plans):
    workspace, issued = workspace_create(name="anon", is_anonymous=True)
    tokens = _login(anon_client, {"api_key": issued.raw}).json()["tokens"]
    refreshed = anon_client.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200, refreshed.content
    assert _bearer(refreshed.json()["access"]).get("/v1/queues").status_code == 200
    # Refresh tokens rotate: the used one is refused.
    again = anon_client.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401


def test_revoking_the_key_ends_its_tokens(anon_client, plans):
    workspace, issued = workspace_create(name="anon", is_anonymous=True)
    tokens = _login(anon_client, {"api_key": issued.raw}).json()["tokens"]
    api_key_rotate_primary(workspace=workspace)  # the old primary key is revoked
    response = _bearer(tokens["access"]).get("/v1/queues")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    refreshed = anon_client.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 401


def test_a_named_key_revoked_ends_its_tokens(anon_client, plans):
    from accounts.services import api_key_create_named

    workspace, _ = workspace_create(name="anon", is_anonymous=True)
    named = api_key_create_named(workspace=workspace, name="ci")
    tokens = _login(anon_client, {"api_key": named.raw}).json()["tokens"]
    assert _bearer(tokens["access"]).get("/v1/queues").status_code == 200
    api_key_revoke(workspace=workspace, key_id=named.key.id)
    assert _bearer(tokens["access"]).get("/v1/queues").status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"api_key": "rt_ws_unknown"}, 401, "UNAUTHORIZED"),
        ({"api_key": "not-a-key"}, 401, "UNAUTHORIZED"),
        ({"api_key": "rt_ws_x", "email": "a@b.c", "password": "secret-pw"}, 400, "VALIDATION_ERROR"),
        ({"email": "a@b.c"}, 400, "VALIDATION_ERROR"),
        ({}, 400, "VALIDATION_ERROR"),
        ({"api_key": 7}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_key_logins(anon_client, plans, body, status, code):
    response = _login(anon_client, body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


def test_key_tokens_do_not_reach_another_workspace(anon_client, plans, other_workspace_and_key):
    other, _ = other_workspace_and_key
    make_queue(other, "secret")
    workspace, issued = workspace_create(name="anon", is_anonymous=True)
    access = _bearer(_login(anon_client, {"api_key": issued.raw}).json()["tokens"]["access"])
    assert access.get("/v1/queues/secret").status_code == 404
