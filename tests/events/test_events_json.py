from __future__ import annotations

import pytest

from queues.events import PendingEvent, events_emit
from queues.models import Event
from tests.factories import make_queue

pytestmark = pytest.mark.django_db


def _emit(workspace, n, queue="work", type_="job:waiting"):
    events_emit([PendingEvent(workspace.id, type_, queue, f"job_{i}", {"i": i}) for i in range(n)])
    return list(Event.objects.filter(workspace=workspace).order_by("id"))


def test_json_list_oldest_first_with_after_and_cursor(pro_client, pro_workspace):
    events = _emit(pro_workspace, 5)
    response = pro_client.get("/v1/events?format=json&limit=2")
    assert response.status_code == 200, response.content
    page = response.json()
    assert [e["id"] for e in page["data"]] == [e.id for e in events[:2]]
    assert set(page["data"][0]) == {"id", "type", "queue", "job_id", "data", "created_at"}
    assert page["data"][0]["type"] == "job:waiting" and page["data"][0]["data"] == {"i": 0}
    page2 = pro_client.get(f"/v1/events?format=json&limit=2&cursor={page['next_cursor']}").json()
    assert [e["id"] for e in page2["data"]] == [e.id for e in events[2:4]]
    after = pro_client.get(f"/v1/events?format=json&after={events[2].id}").json()
    assert [e["id"] for e in after["data"]] == [e.id for e in events[3:]] and after["next_cursor"] is None


def test_queue_events_only_that_queue(pro_client, pro_workspace):
    make_queue(pro_workspace, "work")
    _emit(pro_workspace, 2, queue="work")
    _emit(pro_workspace, 3, queue="other")
    data = pro_client.get("/v1/queues/work/events?format=json").json()["data"]
    assert len(data) == 2 and {e["queue"] for e in data} == {"work"}
    missing = pro_client.get("/v1/queues/nope/events?format=json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_isolation(pro_client, pro_workspace, other_workspace_client):
    make_queue(pro_workspace, "work")
    _emit(pro_workspace, 2)
    assert other_workspace_client.get("/v1/events?format=json").json()["data"] == []
    response = other_workspace_client.get("/v1/queues/work/events?format=json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("query", ["after=nope", "after=job_01", "limit=0", "limit=abc", "cursor=%%%"])
def test_bad_query_is_400(pro_client, query):
    response = pro_client.get(f"/v1/events?format=json&{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_auth_required_both_formats(anon_client):
    for url in ("/v1/events?format=json", "/v1/events"):
        response = anon_client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
    bad = anon_client.get("/v1/events", HTTP_AUTHORIZATION="Bearer rt_ws_unknown")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "UNAUTHORIZED"


def test_post_is_405(pro_client):
    response = pro_client.post("/v1/events", {}, format="json")
    assert response.status_code == 405 and response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_accept_json_gets_the_list_and_an_event_stream_client_the_stream(pro_client, pro_workspace):
    """A client that asks for JSON only (no text/event-stream, which EventSource always sends) gets the list
    envelope, instead of a stream it cannot read (a WSGI thread held for the stream's maximum duration)."""
    events = _emit(pro_workspace, 2)
    response = pro_client.get("/v1/events", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and not response.streaming
    assert [e["id"] for e in response.json()["data"]] == [e.id for e in events]

    stream = pro_client.get("/v1/events", HTTP_ACCEPT="text/event-stream, application/json")
    try:
        assert stream.streaming and stream["Content-Type"] == "text/event-stream"
    finally:
        stream.close()  # gives the WSGI stream slot back without reading the stream
