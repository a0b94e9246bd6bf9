import pytest

from accounts.models import ApiKey
from accounts.services import api_key_revoke, hash_api_key

pytestmark = pytest.mark.django_db


def test_health_is_public(anon_client):
    response = anon_client.get("/v1/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["services"]["database"]["status"] == "ok"
    assert body["services"]["broker"]["status"] == "ok"


def test_key_is_stored_hashed(workspace, api_key):
    stored = ApiKey.objects.get(workspace=workspace)
    assert stored.key_hash == hash_api_key(api_key)
    assert api_key not in (stored.key_hash, stored.prefix)
    assert api_key.startswith(stored.prefix) and stored.prefix.startswith("rt_ws_")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer rt_ws_unknown", "Basic abc", "Bearer a b", "rt_ws_nobearer"],
)
def test_bad_credentials_are_401_in_envelope(client, plans, header):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/v1/queues", **kwargs)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_revoked_key_is_401(workspace, api_key, api_client):
    key = ApiKey.objects.get(workspace=workspace)
    api_key_revoke(workspace=workspace, key_id=key.id)
    response = api_client.get("/v1/queues")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_unknown_route_is_404_envelope(api_client):
    response = api_client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_register_anonymous(anon_client, plans):
    response = anon_client.post("/v1/auth/register-anonymous", {"name": "scratch"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["api_key"].startswith("rt_ws_")
    assert body["workspace"]["plan"] == "free"
    assert ApiKey.objects.filter(key_hash=hash_api_key(body["api_key"])).exists()


def test_register_anonymous_rejects_unknown_field(anon_client, plans):
    response = anon_client.post("/v1/auth/register-anonymous", {"nom": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "nom" in response.json()["error"]["details"]


def test_form_encoding_is_415(anon_client, plans):
    response = anon_client.post("/v1/auth/register-anonymous", {"name": "x"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_malformed_json_is_400_bad_request(anon_client, plans):
    response = anon_client.post("/v1/auth/register-anonymous", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_openapi_document(anon_client):
    response = anon_client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
    assert "/v1/health" in response.json()["paths"]
