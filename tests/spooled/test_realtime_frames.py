"""Spindle's outbox events in Spooled's realtime words (spooled.realtime.frames), and the keep-alive bound."""

from __future__ import annotations

from django.test import override_settings

from spooled.realtime import frames
from spooled.realtime.opening import timing


def _event(kind: str, **data):
    return {"id": "evt_1", "type": kind, "queue": "q", "job_id": "job_1", "data": data, "created_at": "T"}


def _kinds(event):
    return [(f["type"], f["data"].get("new_status")) for f in frames.frames_of(event)]


def test_each_job_event_becomes_spooled_frames():
    assert _kinds(_event("job:waiting", name=None)) == [("JobCreated", None), ("JobStatusChange", "pending")]
    assert _kinds(_event("job:delayed", name="x")) == [("JobCreated", None), ("JobStatusChange", "scheduled")]
    assert _kinds(_event("job:waiting", reason="retry")) == [("JobStatusChange", "pending")]
    assert _kinds(_event("job:active", attempt=1)) == [("JobStatusChange", "processing")]
    retry = _event("job:delayed", attempt=1, error={"message": "boom"}, reason="failed", run_at="T")
    assert _kinds(retry) == [("JobFailed", None), ("JobStatusChange", "failed")]
    assert frames.frames_of(retry)[0]["data"]["error"] == "boom"
    assert _kinds(_event("job:completed", attempt=1)) == [
        ("JobStatusChange", "completed"),
        ("JobCompleted", None),
    ]
    dead = _event("job:failed", attempt=3, error={"message": "gave up"})
    assert _kinds(dead) == [("JobFailed", None)] and frames.frames_of(dead)[0]["data"]["retry_count"] == 2
    assert _kinds(_event("job:dead", attempt=3)) == [("JobStatusChange", "deadletter")]
    assert _kinds(_event("job:removed", cancelled=True)) == [("JobStatusChange", "cancelled")]
    assert _kinds(_event("job:progress", progress=5)) == []
    assert frames.frames_of({**_event("queue:paused"), "job_id": None}) == []


def test_sse_text_carries_the_envelope_and_the_outbox_id():
    text = frames.sse(frames.status_change("job_1", "q", "", "pending", "T"), "evt_9")
    assert text.startswith("id: evt_9\nevent: job.status\ndata: {") and text.endswith("}\n\n")
    assert '"type":"JobStatusChange"' in text and '"new_status":"pending"' in text


@override_settings(SPINDLE_SSE_HEARTBEAT_S=60.0)
def test_keep_alive_is_at_most_15_seconds_whatever_the_setting():
    assert timing("token", "ws_1")["heartbeat_s"] == 15.0
