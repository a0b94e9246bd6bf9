"""Pull-worker job routes (API.md "Pull workers"): claims and lease-fenced job operations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from accounts.authentication import Companion
from config.api import WorkspaceViewSet, error_responses
from config.exceptions import NotFound, PayloadTooLarge, ValidationFailed
from jobs.models import Job
from jobs.serializers import JobSchema, job_to_dict
from jobs.services import pull
from jobs.views.pull_inputs import (
    LONG_POLL_BUDGET_DOC,
    MAX_ACK_ITEMS,
    MAX_LEASE_MS,
    AckInSchema,
    AckOutSchema,
    ClaimInSchema,
    ClaimManyInSchema,
    ClaimOutSchema,
    CompleteInSchema,
    FailInSchema,
    LeasedJobSchema,
    LeaseInSchema,
    ProgressInSchema,
    ack_item_problems,
    check_size,
    claim_params,
    error_object,
    int_in,
    lease_token_of,
    raise_if,
)
from jobs.views.route_queue import QUEUE_OF_ROUTE, route_queue


def _leased(job: Job, queue_name: str) -> dict[str, Any]:
    body = job_to_dict(job, queue_name=queue_name)
    body["lease_token"] = job.lease_token
    return body


def _claim_response(result: pull.ClaimResult) -> Response:
    response = Response({"data": [_leased(job, result.queue_names[job.queue_id]) for job in result.jobs]})
    if result.long_poll_refused:
        response["Spindle-Long-Poll"] = "refused"
    return response


# --- claims and lease-fenced job operations -------------------------------------------------------

_PULL_ERRORS = error_responses(400, 401, 404, 409, 413, 415)


def _job_op_schema(request: type[Serializer], response: type[Serializer]) -> Any:
    return extend_schema(request=request, responses={200: response, **_PULL_ERRORS})


@extend_schema(tags=["Pull workers"])
class PullJobViewSet(WorkspaceViewSet):
    """`/v1/queues/{name}/jobs/claim|ack` and `/v1/queues/{name}/jobs/{id}/heartbeat|progress|complete|fail`.
    A push queue answers 409 INVALID_STATE (`details.delivery`): its jobs are leased by the delivery engine."""

    @property
    def auth_companion(self) -> Companion | None:
        # Only the claim reads its queue's row; the lease-fenced routes scope their statements by its name.
        return QUEUE_OF_ROUTE if self.action == "claim" else None

    def handle_exception(self, exc: Exception) -> Response:
        # Another workspace's (or an unknown) job is a 404 whatever the body holds. Checked only when the body
        # is refused, so the hot path (a valid complete/heartbeat) costs no extra query.
        if isinstance(exc, (ValidationFailed, PayloadTooLarge)) and "job_id" in self.kwargs:
            exists = Job.objects.filter(
                workspace=self.workspace, queue__name=self.kwargs.get("name"), id=self.kwargs["job_id"]
            ).exists()
            if not exists:
                exc = NotFound("No such job.")
        return super().handle_exception(exc)

    def _lease_body(self, request: Request, *fields: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The strict body of a lease-fenced job operation, its error map and its lease token."""
        data = self.strict_data(request, {"lease_token", *fields})
        errors: dict[str, Any] = {}
        return data, errors, lease_token_of(data, errors)

    def _on_job(
        self,
        operation: Callable[..., tuple[str, Job]],
        name: str,
        job_id: str,
        token: str,
        *,
        leased: bool,
        **change: Any,
    ) -> Response:
        """Apply a lease-fenced operation. A job still leased (heartbeat, progress) is rendered with its lease
        token; a finished one as it is."""
        queue_name, job = operation(
            workspace=self.workspace, queue_name=name, job_id=job_id, lease_token=token, **change
        )
        return Response(_leased(job, queue_name) if leased else job_to_dict(job, queue_name=queue_name))

    @extend_schema(
        request=ClaimInSchema,
        responses={200: ClaimOutSchema, **error_responses(400, 401, 404, 409, 415)},
        description="Lease up to `limit` ready jobs. With `wait_ms` the request waits until a job becomes "
        "ready (woken by PostgreSQL LISTEN/NOTIFY) or the time is up; an empty `data` means nothing was ready. "
        + LONG_POLL_BUDGET_DOC,
    )
    def claim(self, request: Request, name: str) -> Response:
        data = self.strict_data(request, {"worker_id", "limit", "lease_ms", "wait_ms"})
        params = claim_params(data, {})
        queue = pull.pull_queue_checked(route_queue(request, self.workspace, name))
        return _claim_response(
            pull.jobs_claim_pull(workspace=self.workspace, queues=[queue], **params._asdict())
        )

    @extend_schema(
        operation_id="pull_claim_many",
        request=ClaimManyInSchema,
        responses={200: ClaimOutSchema, **error_responses(400, 401, 415)},
        description="Lease up to `limit` ready jobs from several pull queues at once: the `queues` named, or "
        "without `queues` those the worker (`worker_id`) registered with (the first "
        f"{pull.MAX_CLAIM_QUEUES}; its unknown or push queues skipped). "
        "Fair across the queues: each gets an equal share of `limit` in turn, starting from a queue that rotates "
        "per call, and the share of a queue with nothing ready goes to the others; every queue's pause, "
        "concurrency, group caps and rate limit hold. Each job carries its `queue`; `lease_ms` defaults to each "
        f"queue's own. At most {pull.MAX_CLAIM_QUEUES} queues; an unknown or push queue in `queues` is 400 "
        "VALIDATION_ERROR. `wait_ms` long-polls until any of the queues has a ready job. "
        + LONG_POLL_BUDGET_DOC,
    )
    def claim_many(self, request: Request) -> Response:
        data = self.strict_data(request, {"queues", "worker_id", "limit", "lease_ms", "wait_ms"})
        errors: dict[str, list[str]] = {}
        queue_names = data.get("queues")
        if queue_names is not None and (
            not isinstance(queue_names, list)
            or not 1 <= len(queue_names) <= pull.MAX_CLAIM_QUEUES
            or not all(isinstance(q, str) and 1 <= len(q) <= 64 for q in queue_names)
        ):
            errors["queues"] = [f"Expected a list of 1 to {pull.MAX_CLAIM_QUEUES} queue names."]
        params = claim_params(data, errors)
        queues = pull.pull_queues_for_claim(
            workspace=self.workspace, queue_names=queue_names, worker_id=params.worker_id
        )
        result = pull.jobs_claim_pull(workspace=self.workspace, queues=queues, **params._asdict())
        return _claim_response(result)

    @_job_op_schema(LeaseInSchema, LeasedJobSchema)
    def heartbeat(self, request: Request, name: str, job_id: str) -> Response:
        data, errors, token = self._lease_body(request, "lease_ms")
        lease_ms = int_in(data, "lease_ms", settings.SPINDLE_MIN_LEASE_MS, MAX_LEASE_MS, errors)
        raise_if(errors)
        return self._on_job(pull.job_lease_extend, name, job_id, token, leased=True, lease_ms=lease_ms)

    @_job_op_schema(ProgressInSchema, LeasedJobSchema)
    def progress(self, request: Request, name: str, job_id: str) -> Response:
        data, errors, token = self._lease_body(request, "progress")
        progress = data.get("progress")
        if "progress" not in data:
            errors["progress"] = ["This field is required."]
        elif not (isinstance(progress, (int, float, dict)) and not isinstance(progress, bool)):
            errors["progress"] = ["Expected a number or an object."]
        raise_if(errors)
        check_size(progress, "progress")
        return self._on_job(pull.job_progress_set, name, job_id, token, leased=True, progress=progress)

    @_job_op_schema(CompleteInSchema, JobSchema)
    def complete(self, request: Request, name: str, job_id: str) -> Response:
        data, errors, token = self._lease_body(request, "result")
        raise_if(errors)
        check_size(data.get("result"), "result")
        return self._on_job(
            pull.job_finish_pull, name, job_id, token, leased=False, success=True, result=data.get("result")
        )

    @_job_op_schema(FailInSchema, JobSchema)
    def fail(self, request: Request, name: str, job_id: str) -> Response:
        data, errors, token = self._lease_body(request, "error", "retry")
        error, problems = error_object(data.get("error"))
        if problems:
            errors["error"] = problems
        retry = data.get("retry", True)
        if not isinstance(retry, bool):
            errors["retry"] = ["Expected a boolean."]
        raise_if(errors)
        return self._on_job(
            pull.job_finish_pull, name, job_id, token, leased=False, success=False, error=error, retry=retry
        )

    @extend_schema(
        request=AckInSchema,
        responses={200: AckOutSchema, **_PULL_ERRORS},
        description="Record up to 1,000 outcomes in one transaction. Items whose lease is stale (or that are "
        "not jobs of this queue) are listed in `lease_lost` and change nothing; the others are applied.",
    )
    def ack(self, request: Request, name: str) -> Response:
        data = self.strict_data(request, {"completed", "failed"})
        completed, failed = data.get("completed", []), data.get("failed", [])
        errors: dict[str, Any] = {}
        for key, value in (("completed", completed), ("failed", failed)):
            if not isinstance(value, list):
                errors[key] = ["Expected a list."]
        raise_if(errors)
        if len(completed) + len(failed) > MAX_ACK_ITEMS:
            raise ValidationFailed(
                f"At most {MAX_ACK_ITEMS} outcomes per request.",
                details={"non_field_errors": [f"At most {MAX_ACK_ITEMS} outcomes per request."]},
            )
        items: list[pull.AckItem] = []
        seen: set[str] = set()
        for key, entries, success in (("completed", completed, True), ("failed", failed, False)):
            allowed = {"id", "lease_token", "result"} if success else {"id", "lease_token", "error", "retry"}
            for index, entry in enumerate(entries):
                problems = ack_item_problems(entry, allowed, success)
                if not problems and entry["id"] in seen:
                    problems = {"id": ["Listed more than once in this request."]}
                if problems:
                    errors.setdefault(key, {})[str(index)] = problems
                    continue
                seen.add(entry["id"])
                if success:
                    check_size(entry.get("result"), "result")
                    items.append(
                        pull.AckItem(
                            id=entry["id"],
                            lease_token=entry["lease_token"],
                            success=True,
                            result=entry.get("result"),
                        )
                    )
                else:
                    error, _ = error_object(entry["error"])
                    items.append(
                        pull.AckItem(
                            id=entry["id"],
                            lease_token=entry["lease_token"],
                            success=False,
                            error=error,
                            retry=entry.get("retry", True),
                        )
                    )
        raise_if(errors)
        acked, lease_lost = pull.jobs_ack(workspace=self.workspace, queue_name=name, items=items)
        return Response({"acked": acked, "lease_lost": lease_lost})
