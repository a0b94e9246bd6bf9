"""Shared fixtures of the Spooled-surface tests: a live `make run`-style server (config.front in front of
gunicorn) on the test database, a workspace key per test, and the official `spooled` SDK pointed at them.

The SDK is imported as `spooled_sdk` (tests/spooled/sdk_alias.py): our app owns the name `spooled`.
Live tests are transactional (the server is another process) and marked slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accounts.services import workspace_create
from tests.events import servers
from tests.spooled.sdk_alias import sdk

# The live server's /metrics token (the SDK's metrics.get(token=...)).
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="module")
def base_url(django_db_setup: None) -> Iterator[str]:
    """One server per module (the test database exists once django_db_setup ran; each test makes a workspace)."""
    with servers.front_server(
        threads=8, SPINDLE_ALLOW_PRIVATE_TARGETS="1", METRICS_TOKEN=METRICS_TOKEN
    ) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def workspace_key(plans: Any) -> tuple[Any, str]:
    """A fresh workspace on the pro plan and its raw key."""
    workspace, key = workspace_create(name="spooled", plan_code="pro")
    return workspace, key.raw


@pytest.fixture
def live_key(workspace_key: tuple[Any, str]) -> str:
    return workspace_key[1]


SpooledClient = sdk.SpooledClient


def sdk_client(base_url: str, api_key: str, **options: Any) -> SpooledClient:
    """The SDK as a user would build it; retries off so an error shows at once (a test that wants them says so)."""
    options.setdefault("retry", sdk.config.RetryConfig(max_retries=0))
    return SpooledClient(api_key=api_key, base_url=base_url, **options)


@pytest.fixture
def spooled_client(base_url: str, live_key: str) -> Iterator[SpooledClient]:
    with sdk_client(base_url, live_key) as client:
        yield client
