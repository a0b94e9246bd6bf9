"""Seed 001 (Spooled) gap: worker online/offline status, and the sweeper reaping workers that went silent."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Execution, Job, Worker
from jobs.services.pull import workers_reap
from jobs.tasks import sweep
from tests.factories import make_queue
from tests.pull.conftest import enqueue

pytestmark = pytest.mark.django_db


def _register(client, name: str = "w", queues: list[str] | None = None) -> dict:
    response = client.post("/v1/workers", {"name": name, "queues": queues or ["work"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _age(worker_id: str, seconds: float) -> None:
    Worker.objects.filter(pk=worker_id).update(last_seen_at=timezone.now() - timedelta(seconds=seconds))


def test_status_follows_the_last_heartbeat(api_client, settings):
    settings.SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S = 60
    fresh = _register(api_client, "fresh")
    silent = _register(api_client, "silent")
    assert fresh["status"] == "online"
    _age(silent["id"], 61)

    listed = {w["name"]: w["status"] for w in api_client.get("/v1/workers").json()["data"]}
    assert listed == {"fresh": "online", "silent": "offline"}
    assert [w["name"] for w in api_client.get("/v1/workers?status=offline").json()["data"]] == ["silent"]
    assert [w["name"] for w in api_client.get("/v1/workers?status=online").json()["data"]] == ["fresh"]

    # A heartbeat brings it back online.
    beat = api_client.post(f"/v1/workers/{silent['id']}/heartbeat", format="json")
    assert beat.json()["status"] == "online"


def test_worker_status_filter_refuses_other_values(api_client):
    response = api_client.get("/v1/workers?status=dead")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_reaping_deletes_silent_workers_and_releases_their_leases(api_client, workspace, settings):
    settings.SPINDLE_WORKER_REAP_AFTER_S = 300
    queue = make_queue(workspace, "work")
    enqueue(workspace, queue, 2)
    gone = _register(api_client, "gone")
    alive = _register(api_client, "alive")
    claimed = api_client.post(
        "/v1/queues/work/jobs/claim", {"worker_id": gone["id"], "limit": 1}, format="json"
    ).json()["data"]
    kept = api_client.post(
        "/v1/queues/work/jobs/claim", {"worker_id": alive["id"], "limit": 1}, format="json"
    ).json()["data"]
    _age(gone["id"], 301)
    _age(alive["id"], 200)  # offline, but not yet reaped

    assert workers_reap() == 1
    assert set(Worker.objects.values_list("name", flat=True)) == {"alive"}
    released = Job.objects.get(pk=claimed[0]["id"])
    assert released.state == "waiting" and released.worker_id is None and released.lease_token is None
    assert released.last_error["type"] == "worker_reaped"
    assert Execution.objects.get(job=released).status == "timeout"
    assert Job.objects.get(pk=kept[0]["id"]).state == "active"
    # The reaped worker's stale token is refused; its heartbeat is a 404 (it must register again).
    done = api_client.post(
        f"/v1/queues/work/jobs/{claimed[0]['id']}/complete",
        {"lease_token": claimed[0]["lease_token"]},
        format="json",
    )
    assert done.status_code == 409
    assert api_client.post(f"/v1/workers/{gone['id']}/heartbeat", format="json").status_code == 404


def test_the_sweeper_reaps(api_client, settings):
    settings.SPINDLE_WORKER_REAP_AFTER_S = 300
    worker = _register(api_client)
    _age(worker["id"], 301)
    result = sweep()
    assert result["workers_reaped"] == 1
    assert not Worker.objects.exists()


def test_reaping_spares_a_worker_seen_again(api_client, workspace, settings):
    """The reaper re-checks the silence under the row lock: a heartbeat that landed in between wins."""
    from jobs.services.pull import worker_deregister

    settings.SPINDLE_WORKER_REAP_AFTER_S = 300
    worker = _register(api_client)
    cutoff = timezone.now() - timedelta(seconds=300)
    with pytest.raises(Exception) as exc:
        worker_deregister(
            workspace=workspace, worker_id=worker["id"], reason="worker_reaped", seen_before=cutoff
        )
    assert exc.value.__class__.__name__ == "NotFound"
    assert Worker.objects.filter(pk=worker["id"]).exists()


def test_reaping_a_job_out_of_attempts_logs_one_dead_letter_warning(
    api_client, workspace, settings, caplog, django_capture_on_commit_callbacks
):
    settings.SPINDLE_WORKER_REAP_AFTER_S = 300
    queue = make_queue(workspace, "work")
    enqueue(workspace, queue, 2)
    Job.objects.update(max_attempts=1)  # the lease the reap releases was the last attempt of one of them
    worker = _register(api_client, "gone")
    claimed = api_client.post(
        "/v1/queues/work/jobs/claim", {"worker_id": worker["id"], "limit": 2}, format="json"
    ).json()["data"]
    Job.objects.filter(pk=claimed[1]["id"]).update(max_attempts=2)
    _age(worker["id"], 301)
    logger = "jobs.services.engine.outcomes"  # the engine's dead-letter lines: one form for every path
    with caplog.at_level(logging.WARNING, logger=logger):
        with django_capture_on_commit_callbacks(execute=True):
            assert workers_reap() == 1
    (record,) = [r for r in caplog.records if r.name == logger]
    dead = Job.objects.get(pk=claimed[0]["id"])
    assert dead.state == "failed" and Job.objects.get(pk=claimed[1]["id"]).state == "waiting"
    assert record.levelno == logging.WARNING
    assert (record.job_id, record.queue, record.queue_id, record.workspace_id) == (
        dead.id,
        "work",
        queue.id,
        workspace.id,
    )
    assert (record.attempts, record.error_type) == (1, "worker_reaped")
    assert dead.id in record.getMessage() and "error_type=worker_reaped" in record.getMessage()
