"""The event stream served the way production serves it: a real uvicorn process on a loopback port."""

from __future__ import annotations

import json

import pytest

from accounts.services import workspace_create
from queues.events import PendingEvent, events_emit
from queues.models import Event
from tests.events import servers
from tests.events.servers import Stream
from tests.events.servers import fields as _fields
from tests.factories import make_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def asgi_server():
    with servers.asgi_server() as port:
        yield port


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

        events_emit(
            [PendingEvent(workspace.id, "job:waiting", "work", f"job_{i}", {"i": i}) for i in range(3)]
        )
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
    make_queue(workspace, "work")
    auth = {"Authorization": f"Bearer {key.raw}"}

    stream = Stream(asgi_server, "/v1/queues/work/events", auth)
    try:
        stream.frames(2)
        events_emit(
            [
                PendingEvent(workspace.id, "queue:paused", "other", None, {}),
                PendingEvent(workspace.id, "queue:paused", "work", None, {"job_name": None}),
            ]
        )
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
