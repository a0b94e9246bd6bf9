"""Pull-worker routes (API.md "Pull workers"): the worker registry and lease-fenced job operations.

Input is checked by small hand-written validators rather than DRF serializers: a batch ack carries up to
1,000 items and PERF.md wants microseconds per item on this path.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import WorkspaceViewSet, error_responses, list_envelope
from config.exceptions import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from config.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from config.pagination import paginate
from jobs.models import Job, Worker
from jobs.serializers import JobSchema, job_to_dict
from jobs.services import pull
from jobs.services.events import iso

QUEUE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
MAX_ACK_ITEMS = 1000
MAX_CLAIM = 100
MAX_LEASE_MS = 3_600_000
MAX_WAIT_MS = 20_000
MAX_METADATA_BYTES = 64 * 1024


# --- input checks ---------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(data: dict[str, Any], key: str, lo: int, hi: int, errors: dict[str, list[str]]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not _is_int(value) or not lo <= value <= hi:
        errors[key] = [f"Expected an integer from {lo} to {hi}."]
        return None
    return value


def _text(data: dict[str, Any], key: str, max_len: int, errors: dict[str, list[str]], *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            errors[key] = ["This field is required."]
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > max_len:
        errors[key] = [f"Expected a string of {1 if required else 0} to {max_len} characters."]
        return None
    return value


def _lease_token(data: dict[str, Any], errors: dict[str, list[str]]) -> str:
    return _text(data, "lease_token", 64, errors, required=True) or ""


def _check_size(value: Any, what: str) -> None:
    if value is not None and len(json.dumps(value)) > settings.SPINDLE_MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"The {what} is larger than {settings.SPINDLE_MAX_PAYLOAD_BYTES} bytes.")


def _error_object(value: Any) -> tuple[dict[str, Any] | None, list[str] | None]:
    """A worker's failure report: `{"message", "type"?}`."""
    if not isinstance(value, dict):
        return None, ["Expected an object with `message` and optional `type`."]
    unknown = sorted(set(value) - {"message", "type"})
    if unknown:
        return None, [f"Unknown field `{k}`." for k in unknown]
    message, kind = value.get("message"), value.get("type")
    if not isinstance(message, str) or not message or len(message) > 10_000:
        return None, ["`message` must be a string of 1 to 10000 characters."]
    if kind is not None and (not isinstance(kind, str) or len(kind) > 200):
        return None, ["`type` must be a string of at most 200 characters."]
    return ({"message": message, "type": kind} if kind is not None else {"message": message}), None


def _raise(errors: dict[str, Any]) -> None:
    if errors:
        raise ValidationFailed(details=errors)


def _leased(job: Job, queue_name: str) -> dict[str, Any]:
    body = job_to_dict(job, queue_name=queue_name)
    body["lease_token"] = job.lease_token
    return body


def _worker_dict(worker: Worker, active_jobs: int, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": worker.id,
        "name": worker.name,
        "queues": worker.queues,
        "hostname": worker.hostname,
        "concurrency": worker.concurrency,
        "metadata": worker.metadata,
        "created_at": iso(worker.created_at),
        "last_seen_at": iso(worker.last_seen_at),
        "status": "online" if pull.worker_is_online(worker, now=now) else "offline",
        "active_jobs": active_jobs,
    }


_LONG_POLL_BUDGET_DOC = (
    "Long-polls are budgeted so they cannot pin the web threads: at most SPINDLE_LONGPOLL_MAX_PER_PROCESS "
    "waiting claims per web process (default 4) and SPINDLE_LONGPOLL_MAX_PER_WORKSPACE per workspace (default 2). "
    "A claim that finds nothing and is over budget answers at once with what is available (an empty `data`) and "
    "the header `Spindle-Long-Poll: refused`; back off a little (e.g. 1 s) before claiming again."
)


def _claim_params(data: dict[str, Any], errors: dict[str, list[str]]) -> tuple[str | None, int, int | None, int]:
    worker_id = _text(data, "worker_id", 40, errors, required=False)
    limit = _int_in(data, "limit", 1, MAX_CLAIM, errors) or 1
    lease_ms = _int_in(data, "lease_ms", settings.SPINDLE_MIN_LEASE_MS, MAX_LEASE_MS, errors)
    wait_ms = _int_in(data, "wait_ms", 0, MAX_WAIT_MS, errors) or 0
    _raise(errors)
    return worker_id, limit, lease_ms, wait_ms


def _claim_response(result: pull.ClaimResult) -> Response:
    response = Response({"data": [_leased(job, result.queue_names[job.queue_id]) for job in result.jobs]})
    if result.long_poll_refused:
        response["Spindle-Long-Poll"] = "refused"
    return response


# --- documentation shapes -------------------------------------------------------------------------


class WorkerInSchema(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    queues = serializers.ListField(child=serializers.CharField(), required=False)
    hostname = serializers.CharField(required=False, max_length=255)
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=10000)
    metadata = serializers.DictField(required=False)


class WorkerSchema(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    hostname = serializers.CharField()
    concurrency = serializers.IntegerField()
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(help_text="Last register, heartbeat, claim or job heartbeat.")
    status = serializers.ChoiceField(
        choices=["online", "offline"],
        help_text="online while last_seen_at is younger than SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S (default 60 s).",
    )
    active_jobs = serializers.IntegerField()


class LeasedJobSchema(JobSchema):
    lease_token = serializers.CharField()


class ClaimInSchema(serializers.Serializer):
    worker_id = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_CLAIM, default=1)
    lease_ms = serializers.IntegerField(required=False, min_value=1000, max_value=MAX_LEASE_MS)
    wait_ms = serializers.IntegerField(required=False, min_value=0, max_value=MAX_WAIT_MS, default=0)


class ClaimManyInSchema(ClaimInSchema):
    queues = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        max_length=20,
        help_text="Pull queues to claim from; default: the queues `worker_id` registered with.",
    )


class LeaseInSchema(serializers.Serializer):
    lease_token = serializers.CharField()
    lease_ms = serializers.IntegerField(required=False, min_value=1000, max_value=MAX_LEASE_MS)


class ProgressInSchema(serializers.Serializer):
    lease_token = serializers.CharField()
    progress = serializers.JSONField(help_text="A number or an object")


class CompleteInSchema(serializers.Serializer):
    lease_token = serializers.CharField()
    result = serializers.JSONField(required=False)


class ErrorInSchema(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(required=False)


class FailInSchema(serializers.Serializer):
    lease_token = serializers.CharField()
    error = ErrorInSchema()
    retry = serializers.BooleanField(required=False, default=True)


class AckCompletedSchema(serializers.Serializer):
    id = serializers.CharField()
    lease_token = serializers.CharField()
    result = serializers.JSONField(required=False)


class AckFailedSchema(serializers.Serializer):
    id = serializers.CharField()
    lease_token = serializers.CharField()
    error = ErrorInSchema()
    retry = serializers.BooleanField(required=False, default=True)


class AckInSchema(serializers.Serializer):
    completed = AckCompletedSchema(many=True, required=False)
    failed = AckFailedSchema(many=True, required=False)


AckOutSchema = inline_serializer(
    "PullAckOut",
    fields={"acked": serializers.IntegerField(), "lease_lost": serializers.ListField(child=serializers.CharField())},
)
ClaimOutSchema = inline_serializer("PullClaimOut", fields={"data": LeasedJobSchema(many=True)})


# --- workers --------------------------------------------------------------------------------------


class WorkerViewSet(WorkspaceViewSet):
    """`/v1/workers`: register, list, heartbeat and deregister pull workers."""

    @extend_schema(
        tags=["Pull workers"],
        parameters=[
            OpenApiParameter("status", str, enum=["online", "offline"], description="Only online or offline workers."),
            OpenApiParameter("limit", int),
            OpenApiParameter("cursor", str),
        ],
        responses={200: list_envelope("WorkerList", WorkerSchema), **error_responses(400, 401)},
        description="Registered workers, newest first. `status` is derived from the last sign of life: `offline` "
        "after SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S (default 60 s) without a register, heartbeat, claim or job "
        "heartbeat. A worker silent for SPINDLE_WORKER_REAP_AFTER_S (default 5 min) is reaped by the sweeper: "
        "deleted, its leases released as on DELETE (its next heartbeat answers 404: register again).",
    )
    def list(self, request: Request) -> Response:
        queryset = Worker.objects.filter(workspace=self.workspace)
        wanted = request.query_params.get("status") or None
        if wanted not in (None, "online", "offline"):
            raise BadRequest("`status` must be online or offline.", details={"status": ["Expected online or offline."]})
        now = timezone.now()
        if wanted is not None:
            fresh = now - timedelta(seconds=settings.SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S)
            queryset = queryset.filter(last_seen_at__gte=fresh) if wanted == "online" else queryset.filter(
                last_seen_at__lt=fresh
            )

        def render(rows: list[Worker]) -> list[dict[str, Any]]:
            counts = pull.worker_active_counts(workspace=self.workspace, worker_ids=[w.id for w in rows])
            return [_worker_dict(w, counts.get(w.id, 0), now) for w in rows]

        return Response(paginate(queryset, request.query_params, render))

    @extend_schema(
        tags=["Pull workers"],
        request=WorkerInSchema,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: WorkerSchema, **error_responses(400, 401, 415, 422)},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        data = self.strict_data(request, {"name", "queues", "hostname", "concurrency", "metadata"})
        errors: dict[str, list[str]] = {}
        name = _text(data, "name", 128, errors, required=True)
        hostname = _text(data, "hostname", 255, errors, required=False) or ""
        concurrency = _int_in(data, "concurrency", 1, 10_000, errors) or 1
        queues = data.get("queues") or []
        if not isinstance(queues, list) or len(queues) > 100 or not all(
            isinstance(q, str) and 1 <= len(q) <= 64 and set(q) <= QUEUE_NAME_CHARS and q[0] not in "_.:-"
            for q in queues
        ):
            errors["queues"] = ["Expected a list of at most 100 queue names."]
        metadata = data.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            errors["metadata"] = ["Expected an object."]
        elif len(json.dumps(metadata)) > MAX_METADATA_BYTES:
            errors["metadata"] = [f"At most {MAX_METADATA_BYTES} bytes."]
        _raise(errors)
        worker = pull.worker_register(
            workspace=self.workspace,
            name=name,
            queues=list(dict.fromkeys(queues)),
            hostname=hostname,
            concurrency=concurrency,
            metadata=metadata,
        )
        return Response(_worker_dict(worker, 0), status=status.HTTP_201_CREATED)

    @extend_schema(tags=["Pull workers"], request=None, responses={200: WorkerSchema, **error_responses(401, 404)})
    def heartbeat(self, request: Request, worker_id: str) -> Response:
        self.strict_data(request, set())
        worker = pull.worker_heartbeat(workspace=self.workspace, worker_id=worker_id)
        counts = pull.worker_active_counts(workspace=self.workspace, worker_ids=[worker.id])
        return Response(_worker_dict(worker, counts.get(worker.id, 0)))

    @extend_schema(tags=["Pull workers"], responses={204: None, **error_responses(401, 404)})
    def destroy(self, request: Request, worker_id: str) -> Response:
        pull.worker_deregister(workspace=self.workspace, worker_id=worker_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- claims and lease-fenced job operations -------------------------------------------------------

_PULL_ERRORS = error_responses(400, 401, 404, 409, 413, 415)


class PullJobViewSet(WorkspaceViewSet):
    """`/v1/queues/{name}/jobs/claim|ack` and `/v1/queues/{name}/jobs/{id}/heartbeat|progress|complete|fail`.
    A push queue answers 409 INVALID_STATE (`details.delivery`): its jobs are leased by the delivery engine."""

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

    @extend_schema(
        tags=["Pull workers"],
        request=ClaimInSchema,
        responses={200: ClaimOutSchema, **error_responses(400, 401, 404, 409, 415)},
        description="Lease up to `limit` ready jobs. With `wait_ms` the request waits until a job becomes "
        "ready (woken by PostgreSQL LISTEN/NOTIFY) or the time is up; an empty `data` means nothing was ready. "
        + _LONG_POLL_BUDGET_DOC,
    )
    def claim(self, request: Request, name: str) -> Response:
        data = self.strict_data(request, {"worker_id", "limit", "lease_ms", "wait_ms"})
        worker_id, limit, lease_ms, wait_ms = _claim_params(data, {})
        queue = pull.pull_queue_get(workspace=self.workspace, queue_name=name)
        result = pull.jobs_claim_pull(
            workspace=self.workspace,
            queues=[queue],
            limit=limit,
            lease_ms=lease_ms,
            wait_ms=wait_ms,
            worker_id=worker_id,
        )
        return _claim_response(result)

    @extend_schema(
        tags=["Pull workers"],
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
        "VALIDATION_ERROR. `wait_ms` long-polls until any of the queues has a ready job. " + _LONG_POLL_BUDGET_DOC,
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
        worker_id, limit, lease_ms, wait_ms = _claim_params(data, errors)
        queues = pull.pull_queues_for_claim(workspace=self.workspace, queue_names=queue_names, worker_id=worker_id)
        result = pull.jobs_claim_pull(
            workspace=self.workspace,
            queues=queues,
            limit=limit,
            lease_ms=lease_ms,
            wait_ms=wait_ms,
            worker_id=worker_id,
        )
        return _claim_response(result)

    @extend_schema(tags=["Pull workers"], request=LeaseInSchema, responses={200: LeasedJobSchema, **_PULL_ERRORS})
    def heartbeat(self, request: Request, name: str, job_id: str) -> Response:
        data = self.strict_data(request, {"lease_token", "lease_ms"})
        errors: dict[str, list[str]] = {}
        token = _lease_token(data, errors)
        lease_ms = _int_in(data, "lease_ms", settings.SPINDLE_MIN_LEASE_MS, MAX_LEASE_MS, errors)
        _raise(errors)
        queue, job = pull.job_lease_extend(
            workspace=self.workspace, queue_name=name, job_id=job_id, lease_token=token, lease_ms=lease_ms
        )
        return Response(_leased(job, queue.name))

    @extend_schema(tags=["Pull workers"], request=ProgressInSchema, responses={200: LeasedJobSchema, **_PULL_ERRORS})
    def progress(self, request: Request, name: str, job_id: str) -> Response:
        data = self.strict_data(request, {"lease_token", "progress"})
        errors: dict[str, list[str]] = {}
        token = _lease_token(data, errors)
        progress = data.get("progress")
        if "progress" not in data:
            errors["progress"] = ["This field is required."]
        elif not (isinstance(progress, (int, float, dict)) and not isinstance(progress, bool)):
            errors["progress"] = ["Expected a number or an object."]
        _raise(errors)
        _check_size(progress, "progress")
        queue, job = pull.job_progress_set(
            workspace=self.workspace, queue_name=name, job_id=job_id, lease_token=token, progress=progress
        )
        return Response(_leased(job, queue.name))

    @extend_schema(tags=["Pull workers"], request=CompleteInSchema, responses={200: JobSchema, **_PULL_ERRORS})
    def complete(self, request: Request, name: str, job_id: str) -> Response:
        data = self.strict_data(request, {"lease_token", "result"})
        errors: dict[str, list[str]] = {}
        token = _lease_token(data, errors)
        _raise(errors)
        _check_size(data.get("result"), "result")
        queue, job = pull.job_finish_pull(
            workspace=self.workspace,
            queue_name=name,
            job_id=job_id,
            lease_token=token,
            success=True,
            result=data.get("result"),
        )
        return Response(job_to_dict(job, queue_name=queue.name))

    @extend_schema(tags=["Pull workers"], request=FailInSchema, responses={200: JobSchema, **_PULL_ERRORS})
    def fail(self, request: Request, name: str, job_id: str) -> Response:
        data = self.strict_data(request, {"lease_token", "error", "retry"})
        errors: dict[str, Any] = {}
        token = _lease_token(data, errors)
        error, problems = _error_object(data.get("error"))
        if problems:
            errors["error"] = problems
        retry = data.get("retry", True)
        if not isinstance(retry, bool):
            errors["retry"] = ["Expected a boolean."]
        _raise(errors)
        queue, job = pull.job_finish_pull(
            workspace=self.workspace,
            queue_name=name,
            job_id=job_id,
            lease_token=token,
            success=False,
            error=error,
            retry=retry,
        )
        return Response(job_to_dict(job, queue_name=queue.name))

    @extend_schema(
        tags=["Pull workers"],
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
        _raise(errors)
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
                problems = _ack_item_problems(entry, allowed, success)
                if not problems and entry["id"] in seen:
                    problems = {"id": ["Listed more than once in this request."]}
                if problems:
                    errors.setdefault(key, {})[str(index)] = problems
                    continue
                seen.add(entry["id"])
                if success:
                    _check_size(entry.get("result"), "result")
                    items.append(pull.AckItem(id=entry["id"], lease_token=entry["lease_token"], success=True,
                                              result=entry.get("result")))
                else:
                    error, _ = _error_object(entry["error"])
                    items.append(pull.AckItem(id=entry["id"], lease_token=entry["lease_token"], success=False,
                                              error=error, retry=entry.get("retry", True)))
        _raise(errors)
        acked, lease_lost = pull.jobs_ack(workspace=self.workspace, queue_name=name, items=items)
        return Response({"acked": acked, "lease_lost": lease_lost})


def _ack_item_problems(entry: Any, allowed: set[str], success: bool) -> dict[str, list[str]]:
    if not isinstance(entry, dict):
        return {"non_field_errors": ["Expected an object."]}
    problems: dict[str, list[str]] = {k: ["Unknown field."] for k in sorted(set(entry) - allowed)}
    job_id = entry.get("id")
    if not isinstance(job_id, str) or not job_id.startswith("job_") or len(job_id) > 40:
        problems["id"] = ["Expected a job id."]
    token = entry.get("lease_token")
    if not isinstance(token, str) or not token or len(token) > 64:
        problems["lease_token"] = ["This field is required."]
    if not success:
        _, error_problems = _error_object(entry.get("error"))
        if error_problems:
            problems["error"] = error_problems
        if not isinstance(entry.get("retry", True), bool):
            problems["retry"] = ["Expected a boolean."]
    return problems
