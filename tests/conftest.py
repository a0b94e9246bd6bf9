"""Shared fixtures: plans, workspaces and authenticated API clients."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Plan
from accounts.plans import seed_default_plans
from accounts.services import workspace_create


@pytest.fixture
def plans(db):
    # Transactional tests flush tables, seeded rows included: put the plans back.
    seed_default_plans(Plan)
    return {p.code: p for p in Plan.objects.all()}


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate-limit windows and idempotency records live in the (Redis) cache; start every test clean.
    cache.clear()
    yield


def make_client(raw_key: str | None) -> APIClient:
    client = APIClient()
    if raw_key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def workspace_and_key(plans):
    return workspace_create(name="acme", plan_code="free")


@pytest.fixture
def workspace(workspace_and_key):
    return workspace_and_key[0]


@pytest.fixture
def api_key(workspace_and_key) -> str:
    return workspace_and_key[1].raw


@pytest.fixture
def api_client(api_key) -> APIClient:
    return make_client(api_key)


@pytest.fixture
def other_workspace_and_key(plans):
    return workspace_create(name="other", plan_code="free")


@pytest.fixture
def other_workspace_client(other_workspace_and_key) -> APIClient:
    return make_client(other_workspace_and_key[1].raw)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()
