"""Fixtures for the seeds' missing surfaces (issue 10 items 2-5)."""

from __future__ import annotations

import pytest

from jobs.services.pull import pull_listener_stop
from queues.models import Queue


@pytest.fixture(autouse=True)
def _stop_listener():
    # The long-poll LISTEN connection is per process; close it so the test database can be dropped.
    yield
    pull_listener_stop()


def make_queue(workspace, name: str, *, delivery: str = "pull", **fields) -> Queue:
    endpoint = {"url": "https://example.com/hook", "method": "POST", "headers": {}, "timeout_ms": 30000}
    return Queue.objects.create(
        workspace=workspace,
        name=name,
        delivery=delivery,
        endpoint=endpoint if delivery == "push" else None,
        signing_secret="whsec_test",
        **fields,
    )
