"""Fixtures for the contract tests: a pull queue, and a loopback target that holds requests until released."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobs.services.pull import pull_listener_stop
from queues.models import Queue


@pytest.fixture(autouse=True)
def _stop_listener() -> Iterator[None]:
    # The long-poll LISTEN connection is per process; close it so the test database can be dropped.
    yield
    pull_listener_stop()


@pytest.fixture
def pull_queue(workspace) -> Queue:
    return Queue.objects.create(
        workspace=workspace, name="work", delivery="pull", signing_secret="whsec_dGVzdA=="
    )


@pytest.fixture
def private_targets(settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    return settings


class Tarpit:
    """A loopback endpoint that accepts each request and answers only once `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Event()
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    target = Tarpit()
    yield target
    target.close()
