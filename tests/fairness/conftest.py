"""Fairness fixtures: the e2e worker and endpoint, and a tarpit (accepts connections, never answers)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import endpoint, start_worker  # noqa: F401 - fixtures shared with the e2e tests


@pytest.fixture
def tarpit() -> Iterator[str]:
    """A URL whose server completes TCP handshakes (the kernel's backlog) but never reads or answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    host, port = sock.getsockname()
    yield f"http://{host}:{port}/tarpit"
    sock.close()
