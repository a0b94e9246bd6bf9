"""A password change ends every older access token, refresh token and dashboard session; a key rotation ends the
tokens and sessions that stood on the old key (issue 14, item 3)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

EMAIL, PASSWORD = "ada@example.com", "correct horse battery"


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _change_password(new: str) -> None:
    user = get_user_model().objects.get(email=EMAIL)
    user.set_password(new)
    user.save()


def _dashboard_session(**form: str) -> Client:
    browser = Client()
    response = browser.post("/login", form)
    assert response.status_code == 302, response.content[:300]
    assert browser.get("/").status_code == 200
    return browser


def test_password_change_ends_older_tokens_and_sessions(plans):
    registered = APIClient().post(
        "/v1/auth/register", {"email": EMAIL, "password": PASSWORD, "name": "Ada"}, format="json"
    )
    tokens = registered.json()["tokens"]
    assert _bearer(tokens["access"]).get("/v1/auth/me").status_code == 200
    browser = _dashboard_session(method="password", email=EMAIL, password=PASSWORD)

    _change_password("a brand new password")

    assert _bearer(tokens["access"]).get("/v1/auth/me").status_code == 401
    assert (
        APIClient().post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401
    )
    assert browser.get("/").status_code == 302  # back to the login page
    fresh = APIClient().post(
        "/v1/auth/login", {"email": EMAIL, "password": "a brand new password"}, format="json"
    )
    new_tokens = fresh.json()["tokens"]
    assert _bearer(new_tokens["access"]).get("/v1/auth/me").status_code == 200
    refreshed = APIClient().post("/v1/auth/refresh", {"refresh": new_tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200
    _dashboard_session(method="password", email=EMAIL, password="a brand new password")


def test_key_rotation_ends_the_old_keys_tokens_and_sessions(workspace_and_key):
    _, key = workspace_and_key
    tokens = APIClient().post("/v1/auth/login", {"api_key": key.raw}, format="json").json()["tokens"]
    assert _bearer(tokens["access"]).get("/v1/queues").status_code == 200
    browser = _dashboard_session(method="api_key", api_key=key.raw)

    assert _bearer(key.raw).post("/v1/auth/rotate-key").status_code == 200

    assert _bearer(tokens["access"]).get("/v1/queues").status_code == 401
    assert (
        APIClient().post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401
    )
    assert browser.get("/").status_code == 302
