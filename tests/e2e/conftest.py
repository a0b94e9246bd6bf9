"""End-to-end fixtures: a real Celery worker subprocess and a real loopback HTTP endpoint.

The worker runs against this session's test database and broker queue (`-Q`), so parallel sessions sharing a
Redis server never take each other's hints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SESSION_QUEUE = f"e2e-{uuid.uuid4().hex[:10]}"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: str
    at: float


@dataclass
class Endpoint:
    """A loopback HTTP server that records every request and answers per `respond`."""

    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    # respond(recorded) -> (status, headers, body); default 200 {"ok": true}
    respond: Callable[[Recorded], tuple[int, dict[str, str], str]] | None = None
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def job_ids(self) -> list[str]:
        with self.lock:
            return [r.headers.get("Spindle-Job-Id", "") for r in self.requests]


def _make_handler(ep: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            rec = Recorded(self.path, {k: v for k, v in self.headers.items()}, body, time.time())
            with ep.lock:
                ep.requests.append(rec)
                ep.in_flight += 1
                ep.max_in_flight = max(ep.max_in_flight, ep.in_flight)
            try:
                if ep.delay_s:
                    time.sleep(ep.delay_s)
                status, headers, text = ep.respond(rec) if ep.respond else (200, {}, '{"ok":true}')
            finally:
                with ep.lock:
                    ep.in_flight -= 1
            data = text.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_PUT = do_POST

    return Handler


@pytest.fixture
def endpoint():
    holder: dict[str, Endpoint] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _make_handler(holder["ep"])(*a))
    server.daemon_threads = True
    ep = Endpoint(server=server)
    holder["ep"] = ep
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ep
    server.shutdown()
    server.server_close()


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    def kill9(self) -> None:
        """kill -9 the whole worker (main process, pool children, embedded beat)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        # Hard stop: a warm shutdown waits for beat and the pool; nothing here needs it (the broker only
        # holds hints, and the next test's database is clean).
        if self.proc.poll() is None:
            self.kill9()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_worker(tmp_path, settings):
    """Start `celery -A config worker` (with beat running the sweeper) and wait until it is ready."""
    workers: list[WorkerProcess] = []
    # Hints sent by this test process go to the session's own broker queue too (jobs.services.dispatch).
    settings.CELERY_TASK_DEFAULT_QUEUE = SESSION_QUEUE

    def start(
        *, concurrency: int = 2, beat: bool = True, extra_env: dict[str, str] | None = None
    ) -> WorkerProcess:
        n = len(workers)
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "SPINDLE_TESTING": "1",
            "SPINDLE_ALLOW_PRIVATE_TARGETS": "1",
            "SPINDLE_SWEEP_INTERVAL_S": "0.2",
            "SPINDLE_MIN_LEASE_MS": "100",
            "SPINDLE_BACKOFF_SCALE": "0.001",
            "SPINDLE_CELERY_QUEUE": SESSION_QUEUE,
            "CONN_MAX_AGE": "0",
            **(extra_env or {}),
        }
        env.pop("TEST_DB_NAME", None)
        log = tmp_path / f"worker{n}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-l",
            "info",
            "-c",
            str(concurrency),
            "-P",
            "prefork",
            "-Q",
            f"{SESSION_QUEUE},{SESSION_QUEUE}-system",
            "-n",
            f"{SESSION_QUEUE}-{n}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if beat:
            cmd += ["-B", "-s", str(tmp_path / f"beat{n}"), "--scheduler", "celery.beat:PersistentScheduler"]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = WorkerProcess(proc, log)
        workers.append(worker)
        deadline = time.time() + 30
        while time.time() < deadline:
            if " ready." in worker.output():
                return worker
            if proc.poll() is not None:
                raise RuntimeError("celery worker exited:\n" + worker.output()[-3000:])
            time.sleep(0.1)
        worker.stop()
        raise RuntimeError("celery worker did not become ready:\n" + worker.output()[-3000:])

    yield start
    for w in workers:
        w.stop()


def wait_for(predicate: Callable[[], Any], *, timeout_s: float = 20.0, interval_s: float = 0.05) -> Any:
    deadline = time.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
