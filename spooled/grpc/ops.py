"""The gRPC operations, synchronous (the server runs them on its database threads): a thin translation of
Spooled's requests onto the existing services: enqueue (jobs.services.enqueue with the v1 validator), pull
claims, lease-fenced outcomes and heartbeats (jobs.services.pull), reads (jobs.selectors) and the worker
registry. Every refusal is a GrpcError carrying the status code the SDK expects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from accounts.authentication import WorkspacePrincipal
from accounts.models import Workspace
from config.exceptions import Conflict, NotFound
from jobs.models import Job, JobState, Worker
from jobs.selectors import job_get_any
from jobs.services import pull
from jobs.services.enqueue import job_enqueue, queue_by_name
from jobs.validation import JobValidator
from queues.models import Queue
from queues.serializers import NAME_RE
from queues.services import queue_create
from spooled.grpc import spooled_pb2 as pb
from spooled.grpc.convert import GrpcError, dict_of, job_message
from spooled.realtime.auth import principal_for_token

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DEFAULT_LEASE_S = 30
MAX_BATCH = 100
MAX_ERROR_CHARS = 2048


def authenticate(metadata: Any) -> WorkspacePrincipal:
    """The caller named by the `x-api-key` metadata (an API key or an access token from a login)."""
    token = next((value for key, value in metadata or () if key == "x-api-key"), None)
    principal = principal_for_token(token if isinstance(token, str) else None)
    if principal is None:
        raise GrpcError(grpc.StatusCode.UNAUTHENTICATED, "Missing, revoked or unknown x-api-key.")
    return principal


def required(value: str, name: str) -> str:
    if not value:
        raise GrpcError(INVALID, f"{name} is required")
    return value


def queue_name_checked(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise GrpcError(
            INVALID, "queue_name must be 1-64 characters: letters, digits, and _ . : - after the first"
        )
    return name


def lease_ms(seconds: int) -> int:
    """Spooled's lease seconds (0: the default 30; otherwise 5..3600) in milliseconds."""
    if seconds == 0:
        return DEFAULT_LEASE_S * 1000
    if not 5 <= seconds <= 3600:
        raise GrpcError(INVALID, "lease duration must be 5..3600 seconds")
    return seconds * 1000


def pull_queue_ensured(workspace: Workspace, name: str) -> Queue:
    """The workspace's queue by name; a queue first named through this surface is created as a pull queue."""
    queue = queue_by_name(workspace_id=workspace.id, name=queue_name_checked(name))
    if queue is not None:
        return queue
    try:
        queue, _ = queue_create(workspace=workspace, data={"name": name, "delivery": Queue.Delivery.PULL})
    except Conflict:  # created by a parallel request meanwhile
        queue = Queue.objects.get(workspace=workspace, name=name)
    return queue


def enqueue(workspace: Workspace, request: pb.EnqueueRequest) -> pb.EnqueueResponse:
    if not -100 <= request.priority <= 100:
        raise GrpcError(INVALID, "priority must be -100..100")
    body: dict[str, Any] = {"payload": dict_of(request.payload), "priority": request.priority}
    if request.max_retries:
        if not 0 <= request.max_retries <= 100:
            raise GrpcError(INVALID, "max_retries must be 0..100")
        body["max_attempts"] = request.max_retries + 1
    if request.timeout_seconds:
        if not 1 <= request.timeout_seconds <= 86400:
            raise GrpcError(INVALID, "timeout_seconds must be 1..86400")
        body["timeout_ms"] = request.timeout_seconds * 1000
    if request.idempotency_key:
        body["idempotency_key"] = request.idempotency_key
    if request.tags:
        body["tags"] = [f"{key}:{value}" for key, value in sorted(request.tags.items())]
    if request.HasField("scheduled_at"):
        body["run_at"] = request.scheduled_at.ToDatetime(tzinfo=UTC).isoformat()
    queue = pull_queue_ensured(workspace, request.queue_name)  # once the request itself is valid
    spec = JobValidator(workspace=workspace, queue=queue).validate_one(body)
    job, created = job_enqueue(workspace=workspace, queue=queue, spec=spec)
    return pb.EnqueueResponse(job_id=job.id, created=created)


def pull_queue_or_none(workspace: Workspace, name: str) -> Queue | None:
    """The pull queue to claim from; None when the workspace has no queue of that name (no jobs yet)."""
    try:
        return pull.pull_queue_get(workspace=workspace, queue_name=name)
    except NotFound:
        return None


def claim_worker(workspace: Workspace, worker_id: str) -> str | None:
    """The registered worker a claim names, if any: Spooled lets any worker id claim, Spindle records only its own."""
    return worker_id if Worker.objects.filter(workspace=workspace, id=worker_id).exists() else None


def dequeue(workspace: Workspace, request: pb.DequeueRequest) -> list[pb.Job]:
    required(request.worker_id, "worker_id")
    if not 0 <= request.batch_size <= MAX_BATCH:
        raise GrpcError(INVALID, f"batch_size must be 1..{MAX_BATCH}")
    queue = pull_queue_or_none(workspace, queue_name_checked(request.queue_name))
    if queue is None:
        return []  # nothing was ever enqueued there: no jobs, as Spooled answers
    result = pull.jobs_claim_pull(
        workspace=workspace,
        queues=[queue],
        limit=request.batch_size or 1,
        lease_ms=lease_ms(request.lease_duration_secs),
        worker_id=claim_worker(workspace, request.worker_id),
    )
    return [job_message(job, queue_name=queue.name) for job in result.jobs]


def job_queue_name(workspace: Workspace, job_id: str) -> str:
    name = Job.objects.filter(workspace=workspace, pk=job_id).values_list("queue__name", flat=True).first()
    if name is None:
        raise GrpcError(grpc.StatusCode.NOT_FOUND, "Job not found")
    return name


def fail_error(text: str) -> dict[str, Any]:
    if not text:
        raise GrpcError(INVALID, "error is required")
    return {"message": text[:MAX_ERROR_CHARS]}


def fail_outcome(job_state: str, run_at: datetime | None) -> pb.FailResponse:
    will_retry = job_state in (JobState.DELAYED, JobState.WAITING)
    delay = (
        max(0, int(((run_at or timezone.now()) - timezone.now()).total_seconds() + 0.999))
        if will_retry
        else 0
    )
    return pb.FailResponse(success=True, will_retry=will_retry, next_retry_delay_secs=delay)


def settle(workspace: Workspace, request: pb.CompleteRequest | pb.FailRequest) -> Any:
    """Complete or fail one held job (fenced by its lease id)."""
    required(request.job_id, "job_id")
    required(request.worker_id, "worker_id")
    required(request.lease_id, "lease_id")
    failing = isinstance(request, pb.FailRequest)
    error = fail_error(request.error) if failing else None
    name = job_queue_name(workspace, request.job_id)
    _, job = pull.job_finish_pull(
        workspace=workspace,
        queue_name=name,
        job_id=request.job_id,
        lease_token=request.lease_id,
        success=not failing,
        result=None if failing else dict_of(request.result),
        error=error,
        retry=request.retry if failing and request.HasField("retry") else True,
    )
    if failing:
        return fail_outcome(job.state, job.run_at)
    return pb.CompleteResponse(success=True)


def renew(workspace: Workspace, request: pb.RenewLeaseRequest) -> pb.RenewLeaseResponse:
    required(request.job_id, "job_id")
    required(request.lease_id, "lease_id")
    _, job = pull.job_lease_extend(
        workspace=workspace,
        queue_name=job_queue_name(workspace, request.job_id),
        job_id=request.job_id,
        lease_token=request.lease_id,
        lease_ms=lease_ms(request.extension_secs),
    )
    response = pb.RenewLeaseResponse(success=True)
    if job.lease_expires_at is not None:
        response.new_expires_at.FromDatetime(job.lease_expires_at)
    return response


def get_job(workspace: Workspace, request: pb.GetJobRequest) -> pb.GetJobResponse:
    job = job_get_any(workspace=workspace, job_id=required(request.job_id, "job_id"))
    return pb.GetJobResponse(job=job_message(job, queue_name=job.queue.name, lease=False))


def queue_stats(workspace: Workspace, request: pb.GetQueueStatsRequest) -> pb.GetQueueStatsResponse:
    queue = queue_by_name(workspace_id=workspace.id, name=queue_name_checked(request.queue_name))
    if queue is None:
        raise GrpcError(grpc.StatusCode.NOT_FOUND, "Queue not found")
    jobs = Job.objects.filter(workspace=workspace, queue=queue)
    retrying = Q(state=JobState.DELAYED, attempts__gt=0)
    counts = jobs.aggregate(
        pending=Count("id", filter=Q(state=JobState.WAITING)),
        scheduled=Count("id", filter=Q(state=JobState.DELAYED) & ~retrying),
        processing=Count("id", filter=Q(state=JobState.ACTIVE)),
        completed=Count("id", filter=Q(state=JobState.COMPLETED)),
        failed=Count("id", filter=retrying),
        deadletter=Count("id", filter=Q(state=JobState.FAILED)),
        total=Count("id"),
    )
    oldest = jobs.filter(state=JobState.WAITING).order_by("run_at").values_list("run_at", flat=True).first()
    age_ms = int((timezone.now() - oldest).total_seconds() * 1000) if oldest else 0
    return pb.GetQueueStatsResponse(queue_name=queue.name, max_age_ms=max(age_ms, 0), **counts)


# --- workers --------------------------------------------------------------------------------------------------


def register(workspace: Workspace, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
    queue = pull_queue_ensured(workspace, request.queue_name)
    hostname = required(request.hostname, "hostname")[:255]
    if not 0 <= request.max_concurrency <= 100:
        raise GrpcError(INVALID, "max_concurrency must be 1..100")
    fields = {
        "name": hostname[:128],
        "queues": [queue.name],
        "hostname": hostname,
        "concurrency": request.max_concurrency or 5,
        "metadata": {**request.metadata, "worker_type": request.worker_type, "version": request.version},
    }
    if request.HasField("worker_id"):
        worker = _worker_upsert(workspace, request.worker_id, fields)
    else:
        worker = pull.worker_register(workspace=workspace, **fields)
    heartbeat_s = max(1, settings.SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S // 3)
    return pb.RegisterWorkerResponse(
        worker_id=worker.id, lease_duration_secs=queue.lease_ms // 1000, heartbeat_interval_secs=heartbeat_s
    )


def _worker_upsert(workspace: Workspace, worker_id: str, fields: dict[str, Any]) -> Worker:
    """Registering a stable id again updates that worker; another workspace's id is ALREADY_EXISTS."""
    valid = (
        1 <= len(worker_id) <= 40
        and all(c.isalnum() or c in "._-" for c in worker_id)
        and worker_id.isascii()
    )
    if not valid:
        raise GrpcError(INVALID, "worker_id must be 1-40 characters: letters, digits, . _ -")
    owner = Worker.objects.filter(id=worker_id).values_list("workspace_id", flat=True).first()
    if owner is not None and owner != workspace.id:
        raise GrpcError(grpc.StatusCode.ALREADY_EXISTS, "This worker_id is taken.")
    if owner is None:
        return Worker.objects.create(id=worker_id, workspace=workspace, **fields)
    Worker.objects.filter(id=worker_id).update(last_seen_at=timezone.now(), **fields)
    return Worker.objects.get(id=worker_id)


def heartbeat(workspace: Workspace, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
    pull.worker_heartbeat(workspace=workspace, worker_id=required(request.worker_id, "worker_id"))
    return pb.HeartbeatResponse(acknowledged=True, should_drain=False)


def deregister(workspace: Workspace, request: pb.DeregisterRequest) -> pb.DeregisterResponse:
    pull.worker_deregister(workspace=workspace, worker_id=required(request.worker_id, "worker_id"))
    return pb.DeregisterResponse(success=True)


def stream_claim(workspace: Workspace, request: pb.StreamJobsRequest, worker: str | None) -> list[pb.Job]:
    """StreamJobs' claim: one job (or none yet) from its pull queue."""
    queue = pull_queue_or_none(workspace, request.queue_name)
    if queue is None:
        return []
    result = pull.jobs_claim_pull(
        workspace=workspace,
        queues=[queue],
        limit=1,
        lease_ms=lease_ms(request.lease_duration_secs),
        worker_id=worker,
    )
    return [job_message(job, queue_name=queue.name) for job in result.jobs]


def stream_queue_id(workspace: Workspace, request: pb.StreamJobsRequest) -> str | None:
    queue = queue_by_name(workspace_id=workspace.id, name=queue_name_checked(request.queue_name))
    return None if queue is None else queue.id
