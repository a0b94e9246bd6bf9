"""A client that goes away while a stream is being opened gives its workspace slot back at once.

Django cancels a view when its client disconnects. A view awaiting `sync_to_async` is cancelled at once, but the
thread it started cannot be: it runs on, takes the stream slot, and nobody releases it. The slot stayed taken
until its TTL (91 s for a dashboard tab), so a workspace at its stream cap saw 204s and 429s for a client that
was long gone. These tests land the disconnect exactly inside that thread hop, in process, through config.asgi.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

from accounts.services import workspace_create
from jobs.services.streams import StreamSlot

pytestmark = pytest.mark.django_db(transaction=True)

HOP_S = 0.3  # how long the thread keeps going after the disconnect arrived


def _run_until_disconnect(path: str, headers: list[tuple[bytes, bytes]], gone: threading.Event) -> list[dict]:
    """Serve one GET through config.asgi; the client disconnects once `gone` is set. Returns what was sent."""
    from config.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict] = []
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while not gone.is_set():
            await asyncio.sleep(0.005)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)  # as uvicorn does for a closed connection: accepted and dropped

    async def serve() -> None:
        await asyncio.wait_for(application(scope, receive, send), timeout=10)

    asyncio.run(serve())
    return sent


def _slot_is_free(workspace_id: str) -> bool:
    probe = StreamSlot(workspace_id, ttl_s=30)
    if not probe.acquire():
        return False
    probe.release()
    return True


def _after(real: Callable[..., Any], gone: threading.Event) -> Callable[..., Any]:
    """`real`, then the client disconnects while this thread is still busy."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        gone.set()
        time.sleep(HOP_S)
        return result

    return wrapped


@override_settings(SPINDLE_MAX_STREAMS_PER_WORKSPACE=1)
def test_api_stream_opened_as_its_client_leaves_frees_its_slot(plans, monkeypatch):
    from jobs.views import events

    workspace, key = workspace_create(name="leaver", plan_code="pro")
    gone = threading.Event()
    monkeypatch.setattr(events, "_open_stream", _after(events._open_stream, gone))
    _run_until_disconnect("/v1/events", [(b"authorization", f"Bearer {key.raw}".encode())], gone)
    assert _slot_is_free(workspace.id)


@override_settings(SPINDLE_MAX_STREAMS_PER_WORKSPACE=1)
def test_api_stream_polling_as_its_client_leaves_ends_and_frees_its_slot(plans, monkeypatch):
    from jobs.services import streams

    workspace, key = workspace_create(name="poller", plan_code="pro")
    gone = threading.Event()
    monkeypatch.setattr(streams.EventStream, "poll", _after(streams.EventStream.poll, gone))
    sent = _run_until_disconnect("/v1/events", [(b"authorization", f"Bearer {key.raw}".encode())], gone)
    assert sent[0]["status"] == 200
    assert _slot_is_free(workspace.id)


@override_settings(SPINDLE_MAX_STREAMS_PER_WORKSPACE=1)
def test_dashboard_feed_opened_as_its_page_leaves_frees_its_slot(plans, monkeypatch):
    from dashboard.views import session

    workspace, key = workspace_create(name="tab", plan_code="pro")
    browser = Client()
    assert browser.post("/login", {"method": "api_key", "api_key": key.raw}).status_code == 302
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    gone = threading.Event()
    monkeypatch.setattr(session, "feed_slot", _after(session.feed_slot, gone))
    _run_until_disconnect("/events", [(b"cookie", cookie)], gone)
    assert _slot_is_free(workspace.id)


def _sessions_of_this_process() -> int:
    """PostgreSQL sessions on the test database held by this process, its own main-thread connection left out."""
    import os

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND client_port IN (SELECT unnest(%s::int[]))",
            [_client_ports(os.getpid())],
        )
        return cursor.fetchone()[0]


def _client_ports(pid: int) -> list[int]:
    """The local ports of this process's TCP connections to PostgreSQL (from /proc, as `ss -p` finds them)."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                parts = line.split()
                if parts[9] in inodes and int(parts[2].rsplit(":", 1)[1], 16) == 5432:
                    ports.append(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def test_streams_served_by_the_asgi_application_leave_no_database_session_behind(plans, monkeypatch):
    """Each ASGI request's sync work runs on a thread that ends with it; a connection kept open for reuse there
    was never reused and stayed open until garbage collection: one PostgreSQL session per stream served."""
    import gc

    from jobs.services import streams

    workspace, key = workspace_create(name="many-tabs", plan_code="pro")
    real_poll = streams.EventStream.poll
    _sessions_of_this_process()  # the main thread's own connection exists before the count that matters
    gc.disable()  # garbage collection would close what was left open, some time later
    try:
        for _ in range(3):
            gone = threading.Event()
            monkeypatch.setattr(streams.EventStream, "poll", _after(real_poll, gone))
            sent = _run_until_disconnect(
                "/v1/events", [(b"authorization", f"Bearer {key.raw}".encode())], gone
            )
            assert sent[0]["status"] == 200
        assert _sessions_of_this_process() == 0
    finally:
        gc.enable()
