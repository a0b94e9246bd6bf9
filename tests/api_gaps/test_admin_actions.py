"""Issue 10 item 5: the staff admin changes job state only through the jobs services, and plans through a service."""

from __future__ import annotations

import pytest

from accounts.models import Workspace
from jobs.models import Execution, Job
from queues.models import Event
from tests.factories import make_queue
from tests.operations.helpers import make_job

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"


def _act(client, action: str, ids: list[str], path: str = CHANGELIST):
    return client.post(path, {"action": action, "_selected_action": ids}, follow=True)


def test_job_state_fields_are_read_only(staff_client, workspace):
    job = make_job(make_queue(workspace, "work"), "failed")
    page = staff_client.get(f"{CHANGELIST}{job.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    for field in ("state", "attempts", "run_at", "finished_at", "result", "last_error", "lease_expires_at"):
        assert field not in form.fields, field
    # A forged POST cannot change the state either.
    staff_client.post(
        f"{CHANGELIST}{job.pk}/change/", {"state": "waiting", "priority": 0, "max_attempts": 4, "tags": "[]"}
    )
    assert Job.objects.get(pk=job.pk).state == "failed"
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403


def test_retry_action_goes_through_the_service(staff_client, workspace):
    queue = make_queue(workspace, "work")
    failed = make_job(queue, "failed")
    active = make_job(queue, "active")
    response = _act(staff_client, "retry_jobs", [failed.id, active.id])
    assert response.status_code == 200
    retried = Job.objects.get(pk=failed.id)
    assert retried.state == "waiting" and retried.attempts == 0 and retried.finished_at is None
    assert Event.objects.filter(job_id=failed.id, type="job:waiting").exists()
    assert Job.objects.get(pk=active.id).state == "active"  # refused (409 in the API), reported, untouched
    text = response.content.decode()
    assert "Retried 1 job(s)" in text and "Refused 1" in text


def test_cancel_action_goes_through_the_service(staff_client, workspace):
    queue = make_queue(workspace, "work")
    waiting = make_job(queue, "waiting")
    completed = make_job(queue, "completed")
    _act(staff_client, "cancel_jobs", [waiting.id, completed.id])
    cancelled = Job.objects.get(pk=waiting.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    assert Event.objects.filter(job_id=waiting.id, type="job:removed").exists()
    assert Job.objects.get(pk=completed.id).state == "completed"


def test_replay_action_enqueues_a_copy(staff_client, workspace):
    queue = make_queue(workspace, "work")
    job = make_job(queue, "failed", payload={"x": 1}, name="send")
    execution = Execution.objects.create(
        workspace=workspace, job=job, queue=queue, attempt=1, status="dead_letter", started_at=job.created_at
    )
    never_ran = make_job(queue, "waiting")
    response = _act(staff_client, "replay_jobs", [job.id, never_ran.id])
    copies = Job.objects.filter(replay_of=execution.id)
    assert copies.count() == 1
    copy = copies.get()
    assert copy.payload == {"x": 1} and copy.name == "send" and copy.state == "waiting"
    assert "Replayed 1 job(s)" in response.content.decode()


def test_change_plan_actions_call_the_service(staff_client, workspace, other_workspace_and_key):
    other = other_workspace_and_key[0]
    response = _act(
        staff_client, "change_plan_to_pro", [workspace.pk, other.pk], path="/admin/accounts/workspace/"
    )
    assert response.status_code == 200
    assert set(Workspace.objects.values_list("plan_id", flat=True)) == {"pro"}
    assert "Moved 2 workspace(s) to the pro plan" in response.content.decode()
    listing = staff_client.get("/admin/accounts/workspace/").content.decode()
    assert "change_plan_to_team" in listing and "change_plan_to_free" in listing


def test_execution_records_are_read_only(staff_client, workspace):
    queue = make_queue(workspace, "work")
    job = make_job(queue, "failed")
    execution = Execution.objects.create(
        workspace=workspace, job=job, queue=queue, attempt=1, status="dead_letter", started_at=job.created_at
    )
    page = staff_client.get(f"/admin/jobs/execution/{execution.pk}/change/")
    assert page.status_code == 200
    assert "status" not in page.context["adminform"].form.fields
    assert staff_client.get("/admin/jobs/execution/add/").status_code == 403
