"""Fixtures for the hardening tests (issue 9): a pull queue and a raw-body client helper."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import make_queue


@pytest.fixture
def queue(workspace):
    return make_queue(workspace, "emails")


def post_raw(client: APIClient, path: str, body: str | bytes, method: str = "post") -> Any:
    """Send a body exactly as given (json.dumps would refuse or re-escape what these tests need to send)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return getattr(client, method)(path, data=data, content_type="application/json")


def assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = json.loads(response.content)
    assert body["error"]["code"] == code, body
    return body["error"]
