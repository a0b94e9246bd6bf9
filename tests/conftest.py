"""Shared fixtures: plans, workspaces and authenticated API clients."""

from __future__ import annotations

import time
import warnings

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Plan
from accounts.plans import seed_default_plans
from config import db
from jobs.services.dispatch import forget_wakers
from tests import processes
from tests.factories import WorkspaceFactory


def pytest_configure(config: pytest.Config) -> None:
    processes.interrupt_on_termination()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Also after Ctrl-C: a teardown cut short by a second interrupt may have left started processes running.
    processes.stop_all()


@pytest.fixture(scope="session", autouse=True)
def _test_database_left_quiet(django_db_setup, django_db_blocker):
    """At the end of the run, before pytest-django drops this worker's test database, wait for the sessions of the
    processes the tests stopped to end. DROP DATABASE itself waits 5 s; a backend whose client was killed while its
    statement waited on a lock stays until that statement ends (statement_timeout: 30 s), and a failed drop leaves
    the database behind. What is still connected after the wait is named in a warning, so a leak stays visible."""
    yield
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        return
    connections.close_all()
    name = connection.settings_dict["NAME"]
    with django_db_blocker.unblock(), connections["default"].temporary_connection() as cursor:
        deadline = time.monotonic() + 15
        while True:
            cursor.execute(
                "SELECT pid, client_port, state, backend_start, left(query, 120) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            left = cursor.fetchall()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    if left:
        warnings.warn(f"sessions still connected to {name} at the end of the run: {left}", stacklevel=1)


@pytest.fixture
def plans(db):
    # Transactional tests flush tables, seeded rows included: put the plans back.
    seed_default_plans(Plan)
    return {p.code: p for p in Plan.objects.all()}


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate-limit windows, idempotency records and push wakers' announcements live in the (Redis) cache; start
    # every test clean.
    cache.clear()
    forget_wakers()
    yield
    # The LISTEN connections (long-poll claims, push wake-ups) are per process and outlive the request that opened
    # them: close them, or this worker's test database cannot be dropped at the end of the run.
    db.backend().listeners_stop()


def make_client(raw_key: str | None) -> APIClient:
    client = APIClient()
    if raw_key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def workspace_and_key(plans):
    return WorkspaceFactory(name="acme")


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
    return WorkspaceFactory(name="other")


@pytest.fixture
def other_workspace_client(other_workspace_and_key) -> APIClient:
    return make_client(other_workspace_and_key[1].raw)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client(client):
    """A Django test client logged in as a superuser (the admin site)."""
    user = get_user_model().objects.create_user(
        username="staff", password="pw-123456", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client
