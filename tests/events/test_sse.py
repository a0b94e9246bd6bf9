"""The event stream served the way production serves it: a real uvicorn process on a loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from accounts.services import workspace_create
from jobs.models import Event
from jobs.services.events import PendingEvent, events_emit
from queues.models import Queue

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def asgi_server():
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL shared with a subprocess")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "tests.events.sse_settings",
        "CONN_MAX_AGE": "0",
    }
    env.pop("TEST_DB_NAME", None)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode())
            time.sleep(0.1)
    yield port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Stream:
    """A raw HTTP/1.1 GET reading SSE frames with a deadline (no client library buffering in the way)."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.headers = head.decode().lower()
        self.chunked = "transfer-encoding: chunked" in self.headers
        self.text = ""

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buffer += data
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _fill(self) -> None:
        if self.chunked:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            while len(self.buffer) < size + 2:
                self.buffer += self.sock.recv(65536)
            self.text += self.buffer[:size].decode()
            self.buffer = self.buffer[size + 2:]
        else:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.text += data.decode()

    def frames(self, count: int, timeout_s: float = 10) -> list[str]:
        """The next `count` frames (blocks separated by a blank line)."""
        deadline = time.monotonic() + timeout_s
        out: list[str] = []
        while len(out) < count:
            if "\n\n" in self.text:
                frame, self.text = self.text.split("\n\n", 1)
                out.append(frame)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {out!r}")
            self._fill()
        return out

    def body(self) -> str:
        """A non-streaming answer's body (Content-Length)."""
        length = int(self.headers.split("content-length: ", 1)[1].split("\r\n", 1)[0])
        while len(self.buffer) < length:
            data = self.sock.recv(65536)
            if not data:
                break
            self.buffer += data
        return self.buffer[:length].decode()

    def close(self) -> None:
        self.sock.close()


def _fields(frame: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in frame.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


def test_stream_connected_events_heartbeat_and_resume(asgi_server, plans):
    workspace, key = workspace_create(name="sse", plan_code="pro")
    other, _ = workspace_create(name="other", plan_code="pro")
    auth = {"Authorization": f"Bearer {key.raw}"}
    stream = Stream(asgi_server, "/v1/events", auth)
    try:
        assert stream.status == 200 and "content-type: text/event-stream" in stream.headers
        retry, connected = stream.frames(2)
        assert retry == "retry: 2000"
        assert _fields(connected)["event"] == "connected"

        events_emit([PendingEvent(workspace.id, "job:waiting", "work", f"job_{i}", {"i": i}) for i in range(3)])
        events_emit([PendingEvent(other.id, "job:waiting", "work", "job_other", {})])
        mine = list(Event.objects.filter(workspace=workspace).order_by("id"))
        got = [_fields(f) for f in stream.frames(3)]
        assert [g["id"] for g in got] == [e.id for e in mine]
        assert [g["event"] for g in got] == ["job:waiting"] * 3
        body = json.loads(got[0]["data"])
        assert body["id"] == mine[0].id and body["data"] == {"i": 0} and body["queue"] == "work"

        # Idle: a comment heartbeat (1 s in these settings, 15 s by default).
        assert stream.frames(1, timeout_s=5)[0] == ": heartbeat"
    finally:
        stream.close()

    # Resume after the first event: the other two come again, nothing else (not the other workspace's).
    resumed = Stream(asgi_server, "/v1/events", {**auth, "Last-Event-ID": mine[0].id})
    try:
        frames = resumed.frames(4)
        assert _fields(frames[1])["event"] == "connected"
        assert [_fields(f)["id"] for f in frames[2:]] == [e.id for e in mine[1:]]
    finally:
        resumed.close()


def test_queue_stream_and_errors(asgi_server, plans):
    workspace, key = workspace_create(name="sse", plan_code="pro")
    Queue.objects.create(workspace=workspace, name="work", delivery="pull", signing_secret="x")
    auth = {"Authorization": f"Bearer {key.raw}"}

    stream = Stream(asgi_server, "/v1/queues/work/events", auth)
    try:
        stream.frames(2)
        events_emit([PendingEvent(workspace.id, "queue:paused", "other", None, {}),
                     PendingEvent(workspace.id, "queue:paused", "work", None, {"job_name": None})])
        frame = _fields(stream.frames(1)[0])
        assert frame["event"] == "queue:paused" and json.loads(frame["data"])["queue"] == "work"
    finally:
        stream.close()

    for path, headers, status, code in (
        ("/v1/events", {}, 401, "UNAUTHORIZED"),
        ("/v1/events", {"Authorization": "Bearer rt_ws_nope"}, 401, "UNAUTHORIZED"),
        ("/v1/queues/nope/events", auth, 404, "NOT_FOUND"),
        ("/v1/events", {**auth, "Last-Event-ID": "garbage"}, 400, "BAD_REQUEST"),
    ):
        s = Stream(asgi_server, path, headers)
        try:
            assert s.status == status, path
            assert json.loads(s.body())["error"]["code"] == code
        finally:
            s.close()
