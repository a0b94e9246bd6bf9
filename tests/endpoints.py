"""Loopback HTTP endpoints served from a thread of the test process: one way to start and stop them.

`serving` runs any handler class; `Endpoint` is the recording target that push deliveries, webhooks and
alerts are sent to in the tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A ThreadingHTTPServer on a free loopback port, shut down and closed on the way out."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: str
    at: float


Respond = Callable[[Recorded], tuple[int, dict[str, str], str]]


@dataclass
class Endpoint:
    """Records every request; answers `respond(recorded)` if set, else `statuses` in turn (then the last one)."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    respond: Respond | None = None
    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job_ids(self) -> list[str]:
        with self.lock:
            return [r.headers.get("Spindle-Job-Id", "") for r in self.requests]

    def _enter(self, rec: Recorded) -> int:
        with self.lock:
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return len(self.requests) - 1

    def answer(self, rec: Recorded) -> tuple[int, dict[str, str], str]:
        index = self._enter(rec)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.respond:
                return self.respond(rec)
            return self.statuses[min(index, len(self.statuses) - 1)], {}, '{"ok":true}'
        finally:
            with self.lock:
                self.in_flight -= 1


def _recording_handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            rec = Recorded(self.path, dict(self.headers.items()), body, time.time())
            status, headers, text = endpoint.answer(rec)
            data = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_PUT = do_POST

    return Handler


@contextmanager
def recording_endpoint() -> Iterator[Endpoint]:
    endpoint = Endpoint()
    with serving(_recording_handler(endpoint)) as server:
        host, port = server.server_address[:2]
        endpoint.url = f"http://{host}:{port}/hook"
        yield endpoint
