"""jobs.services.bulk: hand-picked jobs retried, cancelled or deleted one by one through the single-job services."""

from __future__ import annotations

import pytest

from accounts.services import workspace_create
from config.exceptions import ValidationFailed
from jobs.models import Job
from jobs.services.bulk import BULK_LIMIT, jobs_bulk_action
from tests.factories import make_queue

from .helpers import make_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_bulk_retry_skips_what_cannot_be_retried_and_foreign_jobs(workspace, plans):
    queue = make_queue(workspace, "emails")
    other_queue = make_queue(workspace, "sms")
    failed, completed = make_job(queue, "failed"), make_job(other_queue, "completed")
    waiting = make_job(queue, "waiting")
    other, _ = workspace_create(name="other")
    theirs = make_job(make_queue(other, "emails"), "failed")
    outcome = jobs_bulk_action(
        workspace=workspace,
        action="retry",
        job_ids=[failed.id, completed.id, waiting.id, theirs.id, failed.id],
    )
    assert outcome.done == [failed.id, completed.id]
    assert outcome.skipped == {waiting.id: "A waiting job cannot be retried.", theirs.id: "not found"}
    states = dict(Job.objects.filter(workspace=workspace).values_list("id", "state"))
    assert states == {failed.id: "waiting", completed.id: "waiting", waiting.id: "waiting"}
    assert Job.objects.get(pk=theirs.pk).state == "failed"


def test_bulk_cancel_and_delete(workspace, plans):
    queue = make_queue(workspace, "emails")
    waiting, failed = make_job(queue, "waiting"), make_job(queue, "failed")
    outcome = jobs_bulk_action(workspace=workspace, action="cancel", job_ids=[waiting.id, failed.id])
    assert outcome.done == [waiting.id] and list(outcome.skipped) == [failed.id]
    outcome = jobs_bulk_action(workspace=workspace, action="delete", job_ids=[waiting.id, failed.id])
    assert outcome.done == [waiting.id, failed.id]
    assert not Job.objects.filter(pk__in=[waiting.pk, failed.pk]).exists()


def test_bulk_refuses_bad_requests(workspace):
    for action, ids in (
        ("explode", ["job_x"]),
        ("retry", []),
        ("retry", [f"job_{i}" for i in range(BULK_LIMIT + 1)]),
    ):
        with pytest.raises(ValidationFailed):
            jobs_bulk_action(workspace=workspace, action=action, job_ids=ids)
