"""Seed 001 (Spooled) gap: one claim across several pull queues (`POST /v1/jobs/claim`)."""

from __future__ import annotations

from collections import Counter

import pytest

from jobs.models import Job, Worker
from tests.factories import make_queue
from tests.pull.conftest import enqueue
from tests.threads import wait_then_wake

pytestmark = pytest.mark.django_db


def _claim(client, **body):
    return client.post("/v1/jobs/claim", body, format="json")


def test_claim_across_named_queues_is_fair(api_client, workspace):
    a, b, c = (make_queue(workspace, n) for n in ("a", "b", "c"))
    enqueue(workspace, a, 10)
    enqueue(workspace, b, 10)
    enqueue(workspace, c, 1)
    response = _claim(api_client, queues=["a", "b", "c"], limit=9)
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    per_queue = Counter(job["queue"] for job in data)
    # c has one job; its unused share goes to a and b, which split the rest evenly.
    assert len(data) == 9 and per_queue["c"] == 1 and {per_queue["a"], per_queue["b"]} == {4}
    assert all(job["lease_token"] and job["state"] == "active" for job in data)
    leased = Job.objects.filter(state="active")
    assert leased.count() == 9


def test_claim_rotates_the_first_queue(api_client, workspace):
    a, b = make_queue(workspace, "a"), make_queue(workspace, "b")
    enqueue(workspace, a, 5)
    enqueue(workspace, b, 5)
    firsts = [_claim(api_client, queues=["a", "b"], limit=1).json()["data"][0]["queue"] for _ in range(4)]
    assert Counter(firsts) == {"a": 2, "b": 2}


def test_claim_respects_each_queues_flow_control(api_client, workspace):
    paused = make_queue(workspace, "paused", paused=True)
    capped = make_queue(workspace, "capped", concurrency=2)
    enqueue(workspace, paused, 5)
    enqueue(workspace, capped, 5)
    data = _claim(api_client, queues=["paused", "capped"], limit=10).json()["data"]
    assert Counter(job["queue"] for job in data) == {"capped": 2}


def test_claim_uses_the_workers_registered_queues(api_client, workspace):
    a, b = make_queue(workspace, "a"), make_queue(workspace, "b")
    make_queue(workspace, "hooks", delivery="push")
    other = make_queue(workspace, "not-mine")
    enqueue(workspace, a, 2)
    enqueue(workspace, b, 2)
    enqueue(workspace, other, 2)
    worker = api_client.post(
        "/v1/workers", {"name": "w", "queues": ["a", "b", "hooks", "deleted-later"]}, format="json"
    ).json()
    data = _claim(api_client, worker_id=worker["id"], limit=10).json()["data"]
    assert Counter(job["queue"] for job in data) == {"a": 2, "b": 2}
    assert set(Job.objects.filter(state="active").values_list("worker_id", flat=True)) == {worker["id"]}


def test_claim_custom_lease_applies_to_every_queue(api_client, workspace):
    a, b = make_queue(workspace, "a", lease_ms=600_000), make_queue(workspace, "b", lease_ms=600_000)
    enqueue(workspace, a, 1)
    enqueue(workspace, b, 1)
    data = _claim(api_client, queues=["a", "b"], limit=2, lease_ms=5000).json()["data"]
    for job in Job.objects.filter(id__in=[j["id"] for j in data]):
        assert (job.lease_expires_at - job.started_at).total_seconds() < 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queues": ["a", "nope"]}, "queues"),
        ({"queues": ["a", "hooks"]}, "queues"),
        ({"queues": []}, "queues"),
        ({"queues": "a"}, "queues"),
        ({"queues": ["a"] * 21}, "queues"),
        ({}, "queues"),
        ({"worker_id": "wkr_unknown"}, "worker_id"),
        ({"queues": ["a"], "limit": 0}, "limit"),
        ({"queues": ["a"], "wait_ms": 20_001}, "wait_ms"),
        ({"queues": ["a"], "bogus": 1}, "bogus"),
    ],
)
def test_claim_refuses_bad_bodies(api_client, workspace, body, field):
    enqueue(workspace, make_queue(workspace, "a"), 1)
    make_queue(workspace, "hooks", delivery="push")
    response = _claim(api_client, **body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert not Job.objects.filter(state="active").exists()


def test_another_workspaces_queues_are_unknown(other_workspace_client, workspace):
    enqueue(workspace, make_queue(workspace, "a"), 1)
    response = _claim(other_workspace_client, queues=["a"])
    assert response.status_code == 400
    assert not Job.objects.filter(state="active").exists()


def test_claim_counts_as_a_worker_heartbeat(api_client, workspace):
    make_queue(workspace, "a")
    worker = api_client.post("/v1/workers", {"name": "w", "queues": ["a"]}, format="json").json()
    before = Worker.objects.get(pk=worker["id"]).last_seen_at
    assert _claim(api_client, worker_id=worker["id"]).status_code == 200
    assert Worker.objects.get(pk=worker["id"]).last_seen_at > before


@pytest.mark.django_db(transaction=True)
def test_long_poll_across_queues_wakes_on_any_of_them(workspace_and_key):
    """A multi-queue claim waiting on two empty queues returns soon after a job lands in the second one."""

    from tests.conftest import make_client

    workspace, key = workspace_and_key
    make_queue(workspace, "a")
    second = make_queue(workspace, "b")
    client = make_client(key.raw)
    woken = wait_then_wake(
        lambda: _claim(client, queues=["a", "b"], wait_ms=5000), lambda: enqueue(workspace, second, 1)[0]
    )
    response, job = woken.waited, woken.woke
    assert response.status_code == 200, response.content
    assert [(j["id"], j["queue"]) for j in response.json()["data"]] == [(job.id, "b")]
    assert woken.latency_s < 1.0
    assert woken.waited_s < 2.0
