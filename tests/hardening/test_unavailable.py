"""Issue 9 item 8: a database, broker or cache outage answers 503 SERVICE_UNAVAILABLE in the envelope, not 500.

The machine's PostgreSQL and Redis are shared and stay up: the request's own connection is pointed at a port where
nothing listens, which is what a stopped server looks like to a client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
import redis
from django.db import connection
from rest_framework.test import APIClient

from config.exceptions import exception_handler
from config.middleware import ErrorEnvelopeMiddleware, handler500

from .conftest import assert_envelope


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on exit: nothing listens there any more


@pytest.fixture
def database_down() -> Iterator[None]:
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_dead_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/v1/queues", "/v1/jobs", "/v1/usage"])
def test_database_down_is_503(api_key, database_down, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = client.get(path)
    assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
    assert response["Retry-After"]


@pytest.mark.django_db(transaction=True)
def test_database_down_on_enqueue_is_503(api_key, database_down):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = client.post("/v1/queues/emails/jobs", {"payload": 1}, format="json")
    assert_envelope(response, 503, "SERVICE_UNAVAILABLE")


def _real_error(connect: Any) -> Exception:
    try:
        connect()
    except Exception as exc:  # noqa: BLE001 - the real error the client library raises is the point
        return exc
    raise AssertionError("connected to a dead port")


def _broker_down() -> Exception:
    url = f"redis://127.0.0.1:{_dead_port()}/0"
    return _real_error(lambda: kombu.Connection(url, connect_timeout=1).ensure_connection(max_retries=0))


def _cache_down() -> Exception:
    return _real_error(lambda: redis.Redis(port=_dead_port(), socket_connect_timeout=1).ping())


class _View:
    pass


@pytest.mark.parametrize("make_error", [_broker_down, _cache_down])
def test_broker_or_cache_down_is_503_in_the_drf_handler(make_error):
    response = exception_handler(make_error(), {"view": _View()})
    assert response.status_code == 503
    assert response.data["error"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.parametrize("make_error", [_broker_down, _cache_down])
def test_broker_or_cache_down_is_503_outside_drf(rf, make_error):
    error = make_error()
    request = rf.get("/v1/health")
    response = ErrorEnvelopeMiddleware(lambda r: None).process_exception(request, error)
    assert response is not None and response.status_code == 503
    try:
        raise error
    except Exception:  # noqa: BLE001 - handler500 reads the exception being handled
        response = handler500(request)
    assert response.status_code == 503
