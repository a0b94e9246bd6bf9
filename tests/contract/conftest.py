"""Fixtures for the contract tests: a pull queue, and a loopback target that holds requests until released."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from queues.models import Queue
from tests.endpoints import serving
from tests.factories import make_queue


@pytest.fixture
def pull_queue(workspace) -> Queue:
    return make_queue(workspace, "work")


@pytest.fixture
def private_targets(settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    return settings


class Tarpit:
    """A loopback endpoint that accepts each request and answers only once `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.url = ""
        tarpit = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                tarpit.arrived.set()
                tarpit.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.handler = Handler


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    target = Tarpit()
    with serving(target.handler) as server:
        target.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        try:
            yield target
        finally:
            target.release.set()  # before the shutdown, which waits for the held requests
