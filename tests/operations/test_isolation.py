"""Every operator route: another workspace's queue or job answers 404 and changes nothing; no key is 401."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.factories import make_queue

from .helpers import make_job

pytestmark = pytest.mark.django_db

QUEUE_ROUTES = [
    ("post", "drain", {}),
    ("post", "clean", {"state": "failed"}),
    ("post", "retry", {"state": "failed"}),
    ("post", "promote", {}),
    ("get", "groups", None),
    ("get", "dlq", None),
    ("post", "dlq/retry", {}),
    ("delete", "dlq", None),
]
JOB_ROUTES = [
    ("patch", "", {"priority": 5}),
    ("delete", "", None),
    ("post", "/cancel", {}),
    ("post", "/retry", {}),
    ("post", "/promote", {}),
    ("get", "/children", None),
]


@pytest.fixture
def setup(workspace):
    queue = make_queue(workspace, "emails")
    jobs = {s: make_job(queue, s) for s in ("waiting", "delayed", "failed", "completed")}
    return queue, jobs


def snapshot(queue):
    return sorted(Job.objects.filter(queue=queue).values_list("id", "state", "priority"))


def call(client, method, path, body):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("method,route,body", QUEUE_ROUTES)
def test_queue_routes_are_404_for_another_workspace(
    other_workspace_client, anon_client, setup, method, route, body
):
    queue, _ = setup
    before = snapshot(queue)
    response = call(other_workspace_client, method, f"/v1/queues/{queue.name}/{route}", body)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert call(anon_client, method, f"/v1/queues/{queue.name}/{route}", body).status_code == 401
    assert snapshot(queue) == before


@pytest.mark.parametrize("method,suffix,body", JOB_ROUTES)
@pytest.mark.parametrize("state", ["delayed", "failed"])
def test_job_routes_are_404_for_another_workspace(
    other_workspace_client, anon_client, setup, method, suffix, body, state
):
    queue, jobs = setup
    before = snapshot(queue)
    path = f"/v1/queues/{queue.name}/jobs/{jobs[state].id}{suffix}"
    response = call(other_workspace_client, method, path, body)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert call(anon_client, method, path, body).status_code == 401
    assert snapshot(queue) == before


def test_same_queue_name_in_another_workspace_is_not_reachable(
    other_workspace_client, other_workspace_and_key, setup
):
    # The other workspace has its own "emails" queue: acting on it must not touch ours.
    queue, jobs = setup
    theirs = make_queue(other_workspace_and_key[0], queue.name)
    before = snapshot(queue)
    assert other_workspace_client.post(f"/v1/queues/{queue.name}/drain").json() == {"affected": 0}
    path = f"/v1/queues/{theirs.name}/jobs/{jobs['failed'].id}/retry"
    assert other_workspace_client.post(path).status_code == 404
    assert snapshot(queue) == before
