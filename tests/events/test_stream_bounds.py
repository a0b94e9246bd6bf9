"""Streams cannot starve a server or a workspace: bounded under WSGI, re-authenticated, capped per workspace."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from accounts.models import Workspace
from accounts.services import api_key_revoke, workspace_create
from jobs.services import streams
from jobs.services.streams import StreamSlot
from queues.events import PendingEvent, events_emit
from tests.events import servers
from tests.events.servers import Stream, call, fields

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_gunicorn_alone_bounds_streams_and_keeps_answering(plans):
    """More streams than threads on gunicorn reached directly: 2 are served (and end after the maximum
    duration, so EventSource reconnects), the rest are refused with 503, and /v1/health still answers."""
    workspace, key = workspace_create(name="wsgi", plan_code="pro")
    auth = {"Authorization": f"Bearer {key.raw}"}
    with servers.gunicorn_server(
        threads=4, SPINDLE_WSGI_MAX_STREAMS="2", SPINDLE_WSGI_STREAM_MAX_S="4"
    ) as port:
        streams = [Stream(port, "/v1/events", auth) for _ in range(6)]
        try:
            assert [s.status for s in streams] == [200, 200, 503, 503, 503, 503]
            for refused in streams[2:]:
                assert json.loads(refused.body())["error"]["code"] == "SERVICE_UNAVAILABLE"
                assert "retry-after: 5" in refused.headers
            for served in streams[:2]:
                assert fields(served.frames(2)[1])["event"] == "connected"

            started = time.monotonic()
            status, _, _ = call("GET", f"http://127.0.0.1:{port}/v1/health")
            assert status == 200 and time.monotonic() - started < 2

            events_emit([PendingEvent(workspace.id, "job:waiting", "work", "job_1", {})])
            for served in streams[:2]:
                frames = [fields(f) for f in served.until_end(timeout_s=8)]
                assert "job:waiting" in [f.get("event") for f in frames]
                assert served.ended  # a clean end of the chunked body, not a reset
        finally:
            for stream in streams:
                stream.close()

        # Both threads and both workspace slots were given back.
        again = Stream(port, "/v1/events", auth)
        try:
            assert again.status == 200
        finally:
            again.close()


def test_revoked_key_and_deleted_workspace_end_open_streams(plans):
    workspace, key = workspace_create(name="revoke", plan_code="pro")
    doomed, doomed_key = workspace_create(name="doomed", plan_code="pro")
    with servers.front_server(threads=2, SPINDLE_SSE_AUTH_RECHECK_S="0.5") as port:
        stream = Stream(port, "/v1/events", {"Authorization": f"Bearer {key.raw}"})
        other = Stream(port, "/v1/events", {"Authorization": f"Bearer {doomed_key.raw}"})
        try:
            stream.frames(2)
            other.frames(2)
            time.sleep(1)  # both streams pass a re-check while still valid
            api_key_revoke(workspace=workspace, key_id=key.key.id)
            Workspace.objects.filter(pk=doomed.pk).delete()
            for s in (stream, other):
                last = fields([f for f in s.until_end(timeout_s=5) if "event:" in f][-1])
                assert last["event"] == "closed"
                assert json.loads(last["data"])["reason"] == "UNAUTHORIZED"
        finally:
            stream.close()
            other.close()
        again = Stream(port, "/v1/events", {"Authorization": f"Bearer {key.raw}"})
        try:
            assert again.status == 401
        finally:
            again.close()


def test_streams_per_workspace_are_capped_across_processes(plans):
    workspace, key = workspace_create(name="cap", plan_code="pro")
    other, other_key = workspace_create(name="other", plan_code="pro")
    auth = {"Authorization": f"Bearer {key.raw}"}
    extra = {"SPINDLE_MAX_STREAMS_PER_WORKSPACE": "2"}
    with (
        servers.front_server(threads=2, **extra) as front,
        servers.gunicorn_server(threads=4, **extra) as direct,
    ):
        first = Stream(front, "/v1/events", auth)
        second = Stream(direct, "/v1/events", auth)  # another process: the count is in the shared cache
        opened = [first, second]
        try:
            assert first.status == second.status == 200
            for port in (front, direct):
                over = Stream(port, "/v1/events", auth)
                opened.append(over)
                assert over.status == 429
                body = json.loads(over.body())
                assert body["error"]["code"] == "RATE_LIMITED" and body["error"]["details"]["limit"] == 2
                assert "retry-after:" in over.headers
            mine = Stream(front, "/v1/events", {"Authorization": f"Bearer {other_key.raw}"})
            opened.append(mine)
            assert mine.status == 200  # another workspace is not affected

            # A closed stream gives its slot back at once (no waiting for the TTL).
            first.close()
            deadline = time.monotonic() + 5
            while True:
                retry = Stream(front, "/v1/events", auth)
                opened.append(retry)
                if retry.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert retry.status == 200
        finally:
            for stream in opened:
                stream.close()


def test_a_slot_left_by_a_dead_process_expires_and_a_live_one_is_renewed():
    """A process killed mid-stream never releases its slot: the TTL frees it; a live stream renews its own."""
    with override_settings(SPINDLE_MAX_STREAMS_PER_WORKSPACE=1):
        dead = StreamSlot("ws_dead", ttl_s=1)
        assert dead.acquire()
        assert not StreamSlot("ws_dead", ttl_s=1).acquire()
        time.sleep(1.5)
        assert StreamSlot("ws_dead", ttl_s=1).acquire()

        # Three renewals 0.8 s apart outlast the 2 s TTL, which would have freed the slot without them; each
        # comes 1.2 s before its TTL ends, so a busy machine's late wake-up does not free it early.
        live = StreamSlot("ws_live", ttl_s=2)
        assert live.acquire()
        for _ in range(3):
            time.sleep(0.8)
            live.renew()
            assert not StreamSlot("ws_live", ttl_s=2).acquire()
        live.release()
        assert StreamSlot("ws_live", ttl_s=2).acquire()


class _Ending(streams.Stream):
    """A stream that ends after its opening frame, as one past its maximum duration does."""

    def opening(self) -> str:
        return ": open\n\n"

    def poll(self) -> tuple[str, bool]:
        return "", False


def test_a_stream_that_ends_itself_frees_its_slots_before_the_body_ends(plans):
    """gunicorn writes the end of the body when the iterator runs out and closes it only after that: slots freed in
    `close` alone were still taken when an EventSource reconnected at once (503)."""
    workspace, _key = workspace_create(name="ending", plan_code="pro")
    slot = StreamSlot(workspace.id, ttl_s=60)
    assert slot.acquire() and streams.wsgi_stream_admit()
    admitted = streams._wsgi_streams
    frames = streams.SyncFrames(
        _Ending(slot=slot, still_authorized=lambda: True, closed={}, poll_s=0, heartbeat_s=60, recheck_s=60,
                max_seconds=0)
    )  # fmt: skip
    assert list(frames) == [": open\n\n"]  # run out, not closed yet
    assert streams._wsgi_streams == admitted - 1
    assert slot.key is None
    frames.close()  # as the server then does: nothing is freed twice
    assert streams._wsgi_streams == admitted - 1
