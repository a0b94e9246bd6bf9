"""Fairness fixtures: the e2e worker and endpoint, and a tarpit (accepts connections, never answers)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from queues.models import Queue
from tests.e2e.conftest import endpoint, start_worker  # noqa: F401 - fixtures shared with the e2e tests
from tests.factories import QueueFactory


@pytest.fixture
def tarpit() -> Iterator[str]:
    """A URL whose server completes TCP handshakes (the kernel's backlog) but never reads or answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    host, port = sock.getsockname()
    yield f"http://{host}:{port}/tarpit"
    sock.close()


def tarpit_queue(workspace, url: str, *, timeout_ms: int) -> Queue:
    """A push queue to `url` whose lease outlasts the request timeout (a tarpit is waited out, not rescued)."""
    return QueueFactory(
        workspace=workspace,
        name="slow",
        delivery="push",
        concurrency=1000,
        lease_ms=timeout_ms + 10_000,
        endpoint={"url": url, "timeout_ms": timeout_ms},
    )


def fast_queue(workspace, url: str) -> Queue:
    """A push queue named "fast" to a prompt endpoint."""
    return QueueFactory(
        workspace=workspace,
        name="fast",
        delivery="push",
        endpoint={"url": url, "timeout_ms": 5000},
    )


def planned_ticks(schedule, window_end: datetime) -> list[datetime]:
    """The tick times a 1-second schedule had due from its first run up to `window_end`."""
    planned, at = [], schedule.next_run_at
    while at <= window_end:
        planned.append(at)
        at += timedelta(seconds=1)
    return planned
