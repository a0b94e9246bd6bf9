"""Seed 002 (a BullMQ dashboard) gaps: flows list, metrics status, `parent` filter, clean of waiting/delayed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from queues.models import Event
from tests.factories import make_queue
from tests.operations.helpers import make_job

pytestmark = pytest.mark.django_db


def _enqueue(client, queue: str, **body):
    response = client.post(f"/v1/queues/{queue}/jobs", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- GET /v1/flows ---------------------------------------------------------------------------------


def test_flows_lists_parents_newest_first_with_children_counts(api_client, workspace):
    make_queue(workspace, "work")
    plain = _enqueue(api_client, "work")
    waiting_parent = _enqueue(api_client, "work", wait_for_children=True)
    parent_by_child = _enqueue(api_client, "work")
    _enqueue(api_client, "work", parent_id=waiting_parent["id"])
    _enqueue(api_client, "work", parent_id=waiting_parent["id"])
    _enqueue(api_client, "work", parent_id=parent_by_child["id"])

    response = api_client.get("/v1/flows")
    assert response.status_code == 200, response.content
    body = response.json()
    ids = [item["id"] for item in body["data"]]
    assert ids == [parent_by_child["id"], waiting_parent["id"]]
    assert plain["id"] not in ids
    assert body["next_cursor"] is None
    first, second = body["data"]
    assert first["children"]["waiting"] == 1 and first["queue"] == "work"
    assert second["children"]["waiting"] == 2 and second["state"] == "delayed"
    assert set(second["children"]) == {"waiting", "delayed", "active", "completed", "failed", "cancelled"}


def test_flows_state_filter_and_pagination(api_client, workspace):
    make_queue(workspace, "work")
    parents = [_enqueue(api_client, "work", wait_for_children=True)["id"] for _ in range(3)]
    plain_parent = _enqueue(api_client, "work")["id"]
    _enqueue(api_client, "work", parent_id=plain_parent)

    delayed = api_client.get("/v1/flows?state=delayed").json()
    assert [item["id"] for item in delayed["data"]] == parents[::-1]
    waiting = api_client.get("/v1/flows?state=waiting").json()
    assert [item["id"] for item in waiting["data"]] == [plain_parent]

    page1 = api_client.get("/v1/flows?limit=2").json()
    assert len(page1["data"]) == 2 and page1["next_cursor"]
    page2 = api_client.get(f"/v1/flows?limit=2&cursor={page1['next_cursor']}").json()
    assert [i["id"] for i in page1["data"] + page2["data"]] == [plain_parent, *parents[::-1]]


def test_flows_bad_state_is_400(api_client):
    response = api_client.get("/v1/flows?state=bogus")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_flows_do_not_show_other_workspaces(
    api_client, workspace, other_workspace_client, other_workspace_and_key
):
    make_queue(workspace, "work")
    _enqueue(api_client, "work", wait_for_children=True)
    assert other_workspace_client.get("/v1/flows").json()["data"] == []


# --- GET /v1/metrics/status ------------------------------------------------------------------------


def test_metrics_status_counts_jobs_per_state(api_client, workspace):
    a = make_queue(workspace, "a")
    b = make_queue(workspace, "b")
    make_queue(workspace, "empty")
    make_job(a, "waiting")
    make_job(a, "waiting")
    make_job(a, "failed")
    make_job(b, "completed")
    make_job(b, "delayed")

    response = api_client.get("/v1/metrics/status")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is True
    assert body["counts"] == {
        "waiting": 2,
        "delayed": 1,
        "active": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
    }
    by_queue = {row["queue"]: row["counts"] for row in body["by_queue"]}
    assert list(by_queue) == ["a", "b", "empty"]
    assert by_queue["a"]["waiting"] == 2 and by_queue["a"]["failed"] == 1
    assert by_queue["empty"] == dict.fromkeys(body["counts"], 0)


def test_metrics_status_ignores_other_workspaces(other_workspace_client, workspace):
    make_job(make_queue(workspace, "a"), "waiting")
    body = other_workspace_client.get("/v1/metrics/status").json()
    assert body["counts"]["waiting"] == 0 and body["by_queue"] == []


# --- ?parent= on job lists -------------------------------------------------------------------------


def test_parent_filter_on_queue_and_workspace_lists(api_client, workspace):
    make_queue(workspace, "work")
    make_queue(workspace, "other")
    parent = _enqueue(api_client, "work", wait_for_children=True)["id"]
    kid1 = _enqueue(api_client, "work", parent_id=parent)["id"]
    kid2 = _enqueue(api_client, "other", parent_id=parent)["id"]
    _enqueue(api_client, "work")

    in_queue = api_client.get(f"/v1/queues/work/jobs?parent={parent}").json()["data"]
    assert [j["id"] for j in in_queue] == [kid1]
    everywhere = api_client.get(f"/v1/jobs?parent={parent}").json()["data"]
    assert [j["id"] for j in everywhere] == [kid2, kid1]
    assert api_client.get(f"/v1/jobs?parent={parent}&state=completed").json()["data"] == []


def test_parent_filter_rejects_a_non_job_id(api_client, workspace):
    make_queue(workspace, "work")
    for path in ("/v1/jobs?parent=nope", "/v1/queues/work/jobs?parent=exe_123"):
        response = api_client.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "BAD_REQUEST"
        assert "parent" in response.json()["error"]["details"]


# --- clean waiting / delayed -----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["waiting", "delayed"])
def test_clean_removes_old_waiting_or_delayed_jobs(api_client, workspace, state):
    queue = make_queue(workspace, "work")
    old = timezone.now() - timedelta(hours=2)
    stale = [make_job(queue, state, created_at=old).id for _ in range(3)]
    fresh = make_job(queue, state).id
    active = make_job(queue, "active", created_at=old).id

    response = api_client.post(
        "/v1/queues/work/clean", {"state": state, "grace_ms": 3_600_000}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"affected": 3}
    left = set(Job.objects.filter(queue=queue).values_list("id", flat=True))
    assert left == {fresh, active}
    removed = set(
        Event.objects.filter(type="job:removed", queue_name="work").values_list("job_id", flat=True)
    )
    assert removed == set(stale)


def test_clean_limit_applies_to_waiting(api_client, workspace):
    queue = make_queue(workspace, "work")
    old = timezone.now() - timedelta(hours=2)
    for _ in range(5):
        make_job(queue, "waiting", created_at=old)
    response = api_client.post("/v1/queues/work/clean", {"state": "waiting", "limit": 2}, format="json")
    assert response.json() == {"affected": 2}
    assert Job.objects.filter(queue=queue).count() == 3


def test_clean_active_is_refused(api_client, workspace):
    make_queue(workspace, "work")
    response = api_client.post("/v1/queues/work/clean", {"state": "active"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
