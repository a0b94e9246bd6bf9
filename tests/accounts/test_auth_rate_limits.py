import pytest

from accounts.models import Workspace
from tests.ratewindow import fresh_window

pytestmark = pytest.mark.django_db


def test_register_routes_share_the_per_address_budget(anon_client, plans, settings):
    settings.SPINDLE_REGISTER_RATE = "3/h"
    fresh_window("127.0.0.1", period_s=3600)
    ok = [
        anon_client.post(
            "/v1/auth/register", {"email": "a@x.io", "password": "pw-123456", "name": "a"}, format="json"
        ),
        anon_client.post("/v1/auth/register-anonymous", {}, format="json"),
        anon_client.post(
            "/v1/auth/register", {"email": "b@x.io", "password": "pw-123456", "name": "b"}, format="json"
        ),
    ]
    assert [r.status_code for r in ok] == [201, 201, 201]
    for path, body in (
        ("/v1/auth/register-anonymous", {}),
        ("/v1/auth/register", {"email": "c@x.io", "password": "pw-123456", "name": "c"}),
    ):
        response = anon_client.post(path, body, format="json")
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "RATE_LIMITED"
        assert int(response["Retry-After"]) >= 1
    assert Workspace.objects.count() == 3
    # Another client address has its own budget.
    other = anon_client.post("/v1/auth/register-anonymous", {}, format="json", REMOTE_ADDR="10.1.2.3")
    assert other.status_code == 201


def test_register_default_rate_is_5_per_hour(anon_client, plans):
    fresh_window("127.0.0.1", period_s=3600)
    codes = [anon_client.post("/v1/auth/register-anonymous", {}, format="json").status_code for _ in range(6)]
    assert codes == [201] * 5 + [429]


def test_login_counts_every_attempt(anon_client, plans, settings):
    fresh_window("127.0.0.1")  # the client address's one-minute window (SPINDLE_LOGIN_RATE, 10/m)
    anon_client.post(
        "/v1/auth/register", {"email": "a@x.io", "password": "pw-123456", "name": "a"}, format="json"
    )
    codes = []
    for i in range(10):
        password = "pw-123456" if i % 2 else "wrong-pass"
        codes.append(
            anon_client.post(
                "/v1/auth/login", {"email": "a@x.io", "password": password}, format="json"
            ).status_code
        )
    assert codes == [401, 200] * 5
    response = anon_client.post("/v1/auth/login", {"email": "a@x.io", "password": "pw-123456"}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert response.has_header("Retry-After")
