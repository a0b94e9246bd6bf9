"""The per-workspace limit holds across web processes: they share the counter in Redis."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from contextlib import ExitStack

import pytest

from accounts.services import workspace_create
from tests import processes
from tests.ratewindow import fresh_window


def _get(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def two_web_processes():
    processes.require_postgres("needs PostgreSQL and a Redis cache shared by the processes")
    if not os.environ.get("CACHE_URL"):
        pytest.skip("needs PostgreSQL and a Redis cache shared by the processes")
    with ExitStack() as stack:
        # Degraded health is fine here: the processes only need to answer.
        ports = [
            stack.enter_context(processes.gunicorn_server(processes.process_env(), threads=2, only_200=False))
            for _ in range(2)
        ]
        yield [f"http://127.0.0.1:{port}" for port in ports]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_burst_across_two_processes_gets_exactly_the_plan_rate(plans, two_web_processes):
    workspace, issued = workspace_create(name="burst", plan_code="free")
    fresh_window(workspace.id, needed_s=15)
    codes = [_get(f"{two_web_processes[i % 2]}/v1/auth/me", issued.raw) for i in range(90)]
    assert codes.count(200) == 60, codes
    assert codes.count(429) == 30, codes
    # Both processes served successes and refusals: the counter really is shared.
    assert {codes[i] for i in range(0, 90, 2)} == {200, 429}
    assert {codes[i] for i in range(1, 90, 2)} == {200, 429}
