import pytest

from accounts.models import ApiKey
from accounts.services import hash_api_key
from tests.conftest import make_client

pytestmark = pytest.mark.django_db


def test_rotate_key_replaces_the_primary_key_at_once(workspace, api_key, api_client):
    extra = api_client.post("/v1/keys", {"name": "ci"}, format="json").json()["api_key"]
    response = api_client.post("/v1/auth/rotate-key")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"api_key", "api_key_prefix"}
    assert body["api_key"] != api_key and body["api_key"].startswith(body["api_key_prefix"])
    old = api_client.get("/v1/auth/me")
    assert old.status_code == 401
    assert old.json()["error"]["code"] == "UNAUTHORIZED"
    new = make_client(body["api_key"]).get("/v1/auth/me")
    assert new.status_code == 200
    assert new.json()["api_key_prefix"] == body["api_key_prefix"]
    # Named keys are not the primary key: rotation leaves them working.
    assert make_client(extra).get("/v1/auth/me").status_code == 200
    primary = ApiKey.objects.filter(workspace=workspace, is_primary=True, revoked_at__isnull=True)
    assert [k.key_hash for k in primary] == [hash_api_key(body["api_key"])]
    assert ApiKey.objects.get(key_hash=hash_api_key(api_key)).revoked_at is not None


def test_rotate_key_needs_auth(plans):
    response = make_client(None).post("/v1/auth/rotate-key")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_keys_create_list_and_revoke(workspace, api_client):
    created = api_client.post("/v1/keys", {"name": "deploy"}, format="json")
    assert created.status_code == 201, created.content
    key = created.json()
    assert set(key) == {"id", "name", "prefix", "is_primary", "created_at", "last_used_at", "api_key"}
    assert key["id"].startswith("key_") and key["name"] == "deploy" and key["is_primary"] is False
    assert key["api_key"].startswith(key["prefix"]) and key["last_used_at"] is None
    assert ApiKey.objects.get(id=key["id"]).key_hash == hash_api_key(key["api_key"])

    assert make_client(key["api_key"]).get("/v1/auth/me").status_code == 200

    listed = api_client.get("/v1/keys")
    assert listed.status_code == 200
    body = listed.json()
    assert body["next_cursor"] is None
    assert [k["id"] for k in body["data"]][0] == key["id"]  # newest first
    assert len(body["data"]) == 2
    assert all("api_key" not in k and "key_hash" not in k for k in body["data"])
    assert body["data"][0]["last_used_at"] is not None  # it was just used

    deleted = api_client.delete(f"/v1/keys/{key['id']}")
    assert deleted.status_code == 204
    assert ApiKey.objects.get(id=key["id"]).revoked_at is not None
    refused = make_client(key["api_key"]).get("/v1/auth/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHORIZED"
    assert [k["id"] for k in api_client.get("/v1/keys").json()["data"]] != [key["id"]]
    again = api_client.delete(f"/v1/keys/{key['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "NOT_FOUND"


def test_keys_pagination(api_client):
    for i in range(3):
        api_client.post("/v1/keys", {"name": f"k{i}"}, format="json")
    page = api_client.get("/v1/keys?limit=2").json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = api_client.get(f"/v1/keys?limit=2&cursor={page['next_cursor']}").json()
    assert len(rest["data"]) == 2 and rest["next_cursor"] is None
    assert api_client.get("/v1/keys?limit=1001").json()["error"]["code"] == "BAD_REQUEST"


def test_other_workspaces_key_is_404(api_client, other_workspace_client, other_workspace_and_key):
    other_key = ApiKey.objects.get(workspace=other_workspace_and_key[0])
    response = api_client.delete(f"/v1/keys/{other_key.id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert ApiKey.objects.get(id=other_key.id).revoked_at is None
    assert other_workspace_client.get("/v1/auth/me").status_code == 200
    assert other_key.id not in [k["id"] for k in api_client.get("/v1/keys").json()["data"]]


@pytest.mark.parametrize("path", ["/v1/keys/key_0000000000", "/v1/keys/nope"])
def test_unknown_key_is_404(api_client, path):
    response = api_client.delete(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a", "prefix": "rt"}, "prefix"),
    ],
)
def test_create_key_validation(api_client, workspace, body, field):
    response = api_client.post("/v1/keys", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert ApiKey.objects.filter(workspace=workspace).count() == 1


def test_keys_need_auth(anon_client, plans):
    for method, path in (("get", "/v1/keys"), ("post", "/v1/keys"), ("delete", "/v1/keys/key_abc")):
        response = getattr(anon_client, method)(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_jwt_can_manage_keys(anon_client, plans):
    body = anon_client.post(
        "/v1/auth/register", {"email": "k@example.com", "password": "pw-123456", "name": "K"}, format="json"
    ).json()
    client = make_client(body["tokens"]["access"])
    created = client.post("/v1/keys", {"name": "from-jwt"}, format="json")
    assert created.status_code == 201
    assert ApiKey.objects.get(id=created.json()["id"]).workspace_id == body["workspace"]["id"]
    rotated = client.post("/v1/auth/rotate-key")
    assert rotated.status_code == 200
    assert make_client(body["api_key"]).get("/v1/auth/me").status_code == 401
