"""A loopback HTTP endpoint that answers 200 at once and records which job each delivery carried."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A killed worker or a timed-out request hangs up mid-answer: expected here, and not worth a traceback.
        pass


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.job_ids: list[str] = []
        # client port -> when it last delivered: which sender (node) is delivering right now
        self.last_seen: dict[int, float] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint behind a pooled client

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder.lock:
                    recorder.job_ids.append(self.headers.get("Spindle-Job-Id", ""))
                    recorder.last_seen[self.client_address[1]] = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def sent_since(self, ports: set[int], seconds: float) -> bool:
        """Whether one of these client ports delivered within the last `seconds`."""
        since = time.monotonic() - seconds
        with self.lock:
            return any(self.last_seen.get(port, 0) > since for port in ports)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.job_ids)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
