from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import ApiKey, Workspace
from accounts.services import hash_api_key
from tests.conftest import make_client

pytestmark = pytest.mark.django_db

REGISTER = {"email": "Ada@Example.com", "password": "correct horse", "name": "Ada"}


def jwt_client(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def register(client, **overrides):
    return client.post("/v1/auth/register", {**REGISTER, **overrides}, format="json")


def test_register_creates_user_workspace_key_and_tokens(anon_client, plans):
    response = register(anon_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"user", "workspace", "tokens", "api_key"}
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["name"] == "Ada"
    assert body["workspace"]["plan"] == "free" and body["workspace"]["id"].startswith("ws_")
    assert set(body["tokens"]) == {"access", "refresh"}
    user = get_user_model().objects.get(email="ada@example.com")
    workspace = Workspace.objects.get(owner=user)
    assert workspace.id == body["workspace"]["id"]
    key = ApiKey.objects.get(key_hash=hash_api_key(body["api_key"]))
    assert key.workspace == workspace and key.is_primary
    assert user.check_password("correct horse") and user.password != "correct horse"
    access = AccessToken(body["tokens"]["access"])
    assert timedelta(minutes=14) < access.lifetime <= timedelta(minutes=15)


def test_register_duplicate_email_is_409(anon_client, plans):
    assert register(anon_client).status_code == 201
    response = register(anon_client, email="ada@EXAMPLE.com")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert get_user_model().objects.count() == 1
    assert Workspace.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"extra": 1}, "extra"),
        ({"user": {"id": 1}}, "user"),
    ],
)
def test_register_validation_errors(anon_client, plans, overrides, field):
    response = register(anon_client, **overrides)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert get_user_model().objects.count() == 0
    assert Workspace.objects.count() == 0


def test_register_missing_fields(anon_client, plans):
    response = anon_client.post("/v1/auth/register", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"email", "password", "name"}


def test_password_limits_are_inclusive(anon_client, plans):
    assert register(anon_client, password="x" * 8).status_code == 201
    assert register(anon_client, email="b@example.com", password="y" * 128).status_code == 201


def test_login_returns_user_and_tokens(anon_client, plans):
    register(anon_client)
    response = anon_client.post(
        "/v1/auth/login", {"email": "ada@example.com", "password": "correct horse"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"user", "tokens"}
    assert body["user"]["email"] == "ada@example.com"
    me = jwt_client(body["tokens"]["access"]).get("/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "ada@example.com"
    assert me.json()["auth"] == "jwt"


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "ada@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": "correct horse"},
    ],
)
def test_login_wrong_credentials_is_401(anon_client, plans, credentials):
    register(anon_client)
    response = anon_client.post("/v1/auth/login", credentials, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert "tokens" not in response.json()


def test_login_inactive_user_is_401(anon_client, plans):
    register(anon_client)
    get_user_model().objects.filter(email="ada@example.com").update(is_active=False)
    response = anon_client.post(
        "/v1/auth/login", {"email": "ada@example.com", "password": "correct horse"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_login_gives_a_staff_user_without_workspace_one(anon_client, plans):
    User = get_user_model()
    User.objects.create_user(
        username="ops@example.com", email="ops@example.com", password="pw-123456", is_staff=True
    )
    response = anon_client.post(
        "/v1/auth/login", {"email": "ops@example.com", "password": "pw-123456"}, format="json"
    )
    assert response.status_code == 200
    assert Workspace.objects.filter(owner__email="ops@example.com", plan_id="free").count() == 1
    assert jwt_client(response.json()["tokens"]["access"]).get("/v1/auth/me").status_code == 200


def test_login_rejects_unknown_fields(anon_client, plans):
    response = anon_client.post(
        "/v1/auth/login", {"email": "a@b.c", "password": "x", "otp": 1}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "otp" in response.json()["error"]["details"]


def test_refresh_rotates_and_the_used_token_is_refused(anon_client, plans):
    tokens = register(anon_client).json()["tokens"]
    first = anon_client.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert first.status_code == 200, first.content
    rotated = first.json()
    assert set(rotated) == {"access", "refresh"}
    assert rotated["refresh"] != tokens["refresh"]
    again = anon_client.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "UNAUTHORIZED"
    # The new refresh token works once, and the new access token acts on the workspace.
    assert (
        anon_client.post("/v1/auth/refresh", {"refresh": rotated["refresh"]}, format="json").status_code
        == 200
    )
    assert jwt_client(rotated["access"]).get("/v1/auth/me").status_code == 200


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c"])
def test_refresh_with_bad_token(anon_client, plans, token):
    response = anon_client.post("/v1/auth/refresh", {"refresh": token}, format="json")
    assert response.status_code in (400, 401)
    expected = "VALIDATION_ERROR" if token == "" else "UNAUTHORIZED"
    assert response.json()["error"]["code"] == expected


def test_refresh_with_an_access_token_is_401(anon_client, plans):
    tokens = register(anon_client).json()["tokens"]
    response = anon_client.post("/v1/auth/refresh", {"refresh": tokens["access"]}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_jwt_acts_on_the_users_workspace(anon_client, plans):
    body = register(anon_client).json()
    response = jwt_client(body["tokens"]["access"]).get("/v1/status")
    assert response.status_code == 200, response.content
    assert response.json()["workspace"]["id"] == body["workspace"]["id"]


@pytest.mark.parametrize("kind", ["refresh", "garbage", "tampered", "expired"])
def test_bad_bearer_tokens_are_401_never_403(anon_client, plans, kind):
    tokens = register(anon_client).json()["tokens"]
    if kind == "refresh":
        token = tokens["refresh"]
    elif kind == "garbage":
        token = "not-a-token"
    elif kind == "tampered":
        token = tokens["access"][:-3] + ("aaa" if not tokens["access"].endswith("aaa") else "bbb")
    else:
        access = AccessToken(tokens["access"])
        access.set_exp(lifetime=timedelta(seconds=-1))
        token = str(access)
    for path in ("/v1/auth/me", "/v1/status", "/v1/keys"):
        response = jwt_client(token).get(path)
        assert response.status_code == 401, (path, response.content)
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_jwt_of_a_deactivated_user_is_401(anon_client, plans):
    tokens = register(anon_client).json()["tokens"]
    get_user_model().objects.update(is_active=False)
    response = jwt_client(tokens["access"]).get("/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_me_with_a_key_of_an_anonymous_workspace(anon_client, plans):
    body = anon_client.post("/v1/auth/register-anonymous", {}, format="json").json()
    response = make_client(body["api_key"]).get("/v1/auth/me")
    assert response.status_code == 200
    me = response.json()
    assert me["user"] is None
    assert me["workspace"]["id"] == body["workspace"]["id"] and me["workspace"]["is_anonymous"] is True
    assert me["plan"]["code"] == "free" and me["plan"]["requests_per_minute"] == 60
    assert me["api_key_prefix"] == body["api_key"][:12]
    assert me["auth"] == "api_key"


def test_me_with_the_key_of_a_registered_user_shows_the_user(anon_client, plans):
    body = register(anon_client).json()
    me = make_client(body["api_key"]).get("/v1/auth/me").json()
    assert me["user"]["email"] == "ada@example.com"


def test_me_without_credentials_is_401(anon_client, plans):
    response = anon_client.get("/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
