"""Frame protection and a CSP on the dashboard and the admin; Secure session and CSRF cookies on HTTPS."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/login", "/admin/login/", "/"])
def test_pages_cannot_be_framed_and_run_only_their_own_scripts(path, plans):
    response = Client().get(path)
    assert response["X-Frame-Options"] == "DENY"
    policy = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy


def test_the_api_answers_without_browser_headers(api_client):
    response = api_client.get("/v1/queues")
    assert "Content-Security-Policy" not in response


def test_cookies_are_secure_on_https_only(plans):
    plain = Client().get("/admin/login/")
    assert not plain.cookies["csrftoken"]["secure"]
    secure = Client().get("/admin/login/", secure=True)
    assert secure.cookies["csrftoken"]["secure"]
    login = Client().post("/login", {"api_key": "rt_ws_nope"}, secure=True)
    for cookie in login.cookies.values():
        assert cookie["secure"], cookie
