"""The worker protocol: claim, heartbeat, complete and fail, fenced by `lease_id` (Spindle's lease token).

A stale or mismatched `lease_id` is 409 `LEASE_EXPIRED` (the SDK's worker then drops the job and never acks it);
Spooled answers 422 when `lease_id` is missing, and so do we. A replayed complete of a job this lease already
completed answers success (the SDK retries acks after a network error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import LeaseLost
from jobs.models import Execution, ExecutionStatus
from jobs.services import pull
from jobs.views.pull_inputs import check_size
from spooled import services
from spooled.rest.base import Body, SpooledView
from spooled.rest.shapes import claimed_job

FAIL_ERROR_MAX = 2048


class ClaimView(SpooledView):
    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only("queue_name", "worker_id", "limit", "lease_duration_secs")
        name = body.text("queue_name", required=True, max_length=100)
        worker_id = body.text("worker_id", required=True, max_length=128)
        limit = body.integer("limit", 1, 100, default=1)
        lease_s = body.integer("lease_duration_secs", 5, 3600, default=30)
        body.done()
        self.require_queue(name)
        services.queue_get_or_create_pull(workspace=self.workspace, name=name)
        queue = pull.pull_queue_get(workspace=self.workspace, queue_name=name)  # a push queue is 409
        result = pull.jobs_claim_pull(
            workspace=self.workspace,
            queues=[queue],
            limit=limit,
            lease_ms=lease_s * 1000,
            worker_id=worker_id,
        )
        return Response({"jobs": [claimed_job(job, queue.name) for job in result.jobs]})


class _LeasedJobView(SpooledView):
    fields: tuple[str, ...] = ()

    def lease_body(self, request: Request) -> tuple[Body, str]:
        body = self.body(request)
        body.only("worker_id", "lease_id", *self.fields)
        body.text("worker_id", required=True, max_length=128)
        lease_id = body.text("lease_id", required=True, max_length=64)
        return body, lease_id

    def on_lease(self, service: Callable[..., Any], job_id: str, lease_id: str, **kwargs: Any) -> Any:
        """A pull service on the leased job, once the key is known to act on the job's queue."""
        job = services.job_by_id(workspace=self.workspace, job_id=job_id)
        self.require_queue(job.queue.name)
        queue_name = job.queue.name
        return service(
            workspace=self.workspace, queue_name=queue_name, job_id=job_id, lease_token=lease_id, **kwargs
        )


class CompleteView(_LeasedJobView):
    fields = ("result",)

    def post(self, request: Request, job_id: str) -> Response:
        body, lease_id = self.lease_body(request)
        body.done()
        result = body.data.get("result")
        check_size(result, "result")
        try:
            self.on_lease(pull.job_finish_pull, job_id, lease_id, success=True, result=result)
        except LeaseLost:
            if not _completed_by(job_id, lease_id):
                raise
        return Response({"success": True})


def _completed_by(job_id: str, lease_id: str) -> bool:
    """Whether this lease already completed the job (a replayed complete)."""
    return Execution.objects.filter(
        job_id=job_id, lease_token=lease_id, status=ExecutionStatus.SUCCESS
    ).exists()


class FailView(_LeasedJobView):
    fields = ("error",)

    def post(self, request: Request, job_id: str) -> Response:
        body, lease_id = self.lease_body(request)
        message = body.text("error", required=True, max_length=FAIL_ERROR_MAX)
        body.done()
        _, failed = self.on_lease(
            pull.job_finish_pull, job_id, lease_id, success=False, error={"message": message}
        )
        return Response({"success": True, "status": "deadletter" if failed.state == "failed" else "failed"})


class HeartbeatView(_LeasedJobView):
    fields = ("lease_duration_secs",)

    def post(self, request: Request, job_id: str) -> Response:
        body, lease_id = self.lease_body(request)
        lease_s = body.integer("lease_duration_secs", 5, 3600, default=30)
        body.done()
        _, held = self.on_lease(pull.job_lease_extend, job_id, lease_id, lease_ms=lease_s * 1000)
        return Response(_lease_state(held))


def _lease_state(job: Any) -> dict[str, Any]:
    return {"success": True, "lease_expires_at": job.lease_expires_at.isoformat().replace("+00:00", "Z")}
