from __future__ import annotations

import pytest

# No DNS in the test sandbox: public targets are IP literals (documentation-free, globally routable).
PUBLIC_URL = "https://93.184.215.14/hooks/spindle"


@pytest.fixture
def post_queue(api_client):
    """Queues created over the API (what these tests exercise); returns the response body."""

    def make(name: str = "emails", **fields):
        body = {"name": name, "endpoint": {"url": PUBLIC_URL}, **fields}
        response = api_client.post("/v1/queues", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return make
