"""Fixtures for alerts, webhooks and events: a pro workspace (rate limit headroom), a loopback receiver,
and helpers that write executions and outbox events the way the engine does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from accounts.services import workspace_create
from jobs.models import Execution, Job
from jobs.services.events import PendingEvent, events_emit
from queues.models import Queue
from tests.conftest import make_client


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    """A loopback HTTP endpoint recording every POST; `statuses` are answered in turn (then the last one)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=lambda: [200])
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"


def _handler(rcv: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            with rcv.lock:
                rcv.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = rcv.statuses[min(len(rcv.requests) - 1, len(rcv.statuses) - 1)]
            data = b'{"ok":true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def receiver():
    holder: dict[str, Receiver] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _handler(holder["r"])(*a))
    server.daemon_threads = True
    holder["r"] = Receiver(server=server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def private_targets(settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


@pytest.fixture
def pro(plans):
    workspace, key = workspace_create(name="pro-ws", plan_code="pro")
    return workspace, make_client(key.raw)


@pytest.fixture
def pro_workspace(pro):
    return pro[0]


@pytest.fixture
def pro_client(pro):
    return pro[1]


@pytest.fixture
def make_pull_queue() -> Callable[..., Queue]:
    def make(workspace: Any, name: str = "work") -> Queue:
        return Queue.objects.create(workspace=workspace, name=name, delivery="pull", signing_secret="whsec_eA==")

    return make


def finish_attempt(queue: Queue, status: str, *, schedule_id: str | None = None, event: str | None = None) -> Execution:
    """One finished attempt (a job, its execution row) and the outbox event the engine writes with it."""
    now = timezone.now()
    terminal = status in ("success", "dead_letter")
    job = Job.objects.create(
        workspace=queue.workspace, queue=queue, state="completed" if status == "success" else
        ("failed" if terminal else "delayed"), run_at=now, created_at=now, updated_at=now, attempts=1,
        finished_at=now if terminal else None, schedule_id=schedule_id,
    )
    execution = Execution.objects.create(
        workspace=queue.workspace, job=job, queue=queue, schedule_id=schedule_id, attempt=1, status=status,
        started_at=now, completed_at=now, duration_ms=5,
        error=None if status == "success" else {"message": "boom", "type": "http_error"},
    )
    etype = event or {"success": "job:completed", "dead_letter": "job:failed"}.get(status, "job:delayed")
    events_emit([PendingEvent(queue.workspace_id, etype, queue.name, job.id, {"attempt": 1})])
    time.sleep(0.002)  # distinct millisecond ids, so "newest" is unambiguous
    return execution
