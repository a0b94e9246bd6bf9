"""Between Spindle's rows and Spooled's gRPC messages: jobs, structs, timestamps, and errors to status codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from config.exceptions import ApplicationError
from jobs.models import Job
from spooled.grpc import spooled_pb2 as pb
from spooled.states import max_retries, retry_count, spooled_state

STATUS = {
    "pending": pb.JOB_STATUS_PENDING,
    "scheduled": pb.JOB_STATUS_SCHEDULED,
    "processing": pb.JOB_STATUS_PROCESSING,
    "completed": pb.JOB_STATUS_COMPLETED,
    "failed": pb.JOB_STATUS_FAILED,
    "deadletter": pb.JOB_STATUS_DEADLETTER,
    "cancelled": pb.JOB_STATUS_CANCELLED,
}
DEFAULT_TIMEOUT_S = 300
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The texts the SDK reads as a lost lease (spooled/grpc/client.py `_is_grpc_lease_lost`).
LEASE_EXPIRED = "lease expired"


class GrpcError(Exception):
    """An RPC's failure: its status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


def struct_of(value: Any) -> struct_pb2.Struct | None:
    """A JSON object as a Struct; anything else has no Struct form (gRPC carries objects only)."""
    if not isinstance(value, dict):
        return None
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def dict_of(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


def timestamp(value: datetime | None) -> dict[str, int] | None:
    """A datetime (naive read as UTC) as a Timestamp's fields, which a message's constructor takes: the arithmetic
    of `Timestamp.FromDatetime` without its validation and calendar calls (11 us -> 1.4 us a field here)."""
    if value is None:
        return None
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - EPOCH
    return {"seconds": delta.days * 86400 + delta.seconds, "nanos": delta.microseconds * 1000}


def error_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("message") or "")
    return "" if value is None else str(value)


def job_fields(job: Job, *, queue_name: str, lease: bool = True) -> dict[str, Any]:
    """A job in Spooled's words (states and counts by spooled.states), as a `pb.Job`'s fields: ProcessJobs puts
    them straight into its response (`ProcessResponse(job=fields)`), which saves building a Job and copying it."""
    return {
        "id": job.id,
        "organization_id": job.workspace_id,
        "queue_name": queue_name,
        "status": STATUS.get(spooled_state(job.state, job.attempts), pb.JOB_STATUS_UNSPECIFIED),
        "payload": struct_of(job.payload),
        "result": struct_of(job.result),
        "retry_count": retry_count(job.attempts),
        "max_retries": max_retries(job.max_attempts),
        "last_error": error_text(job.last_error),
        "priority": job.priority,
        "timeout_seconds": -(-job.timeout_ms // 1000) if job.timeout_ms else DEFAULT_TIMEOUT_S,
        "created_at": timestamp(job.created_at),
        "scheduled_at": timestamp(job.run_at),
        "started_at": timestamp(job.started_at),
        "completed_at": timestamp(job.finished_at),
        "lease_expires_at": timestamp(job.lease_expires_at),
        "assigned_worker_id": job.worker_id or "",
        "idempotency_key": job.idempotency_key or "",
        "lease_id": (job.lease_token or "") if lease else "",
    }


def job_message(job: Job, *, queue_name: str, lease: bool = True) -> pb.Job:
    """A job in Spooled's words; `lease` adds its lease token."""
    return pb.Job(**job_fields(job, queue_name=queue_name, lease=lease))


_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    402: grpc.StatusCode.RESOURCE_EXHAUSTED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def grpc_error(exc: ApplicationError) -> GrpcError:
    """A domain error as the status the SDK maps back to the same class (spooled-sdk.md section 6)."""
    code = _CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)
    message = exc.message
    if exc.code == "LEASE_LOST":
        state = (exc.details or {}).get("state")
        terminal = state in ("completed", "failed", "cancelled")
        message = f"Job is already {spooled_state(state, 1)}" if terminal else LEASE_EXPIRED
    elif exc.status_code == 402:
        # Plan caps: the SDK reads RESOURCE_EXHAUSTED without retry-after and "limit reached" as a quota.
        message = f"{exc.message} (limit reached)"
    elif exc.details:
        message = f"{exc.message} {exc.details}"
    retry_after = (exc.details or {}).get("retry_after_s")
    return GrpcError(code, message, int(retry_after) if retry_after else None)
