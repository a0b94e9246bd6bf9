"""Pull-worker input checks and the routes' documentation shapes (API.md "Pull workers").

Input is checked by small hand-written validators rather than DRF serializers: a batch ack carries up to
1,000 items and PERF.md wants microseconds per item on this path.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from django.conf import settings
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from config.exceptions import PayloadTooLarge, ValidationFailed
from jobs.serializers import JobSchema

QUEUE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
MAX_ACK_ITEMS = 1000
MAX_CLAIM = 100
MAX_LEASE_MS = 3_600_000
MAX_WAIT_MS = 20_000
MAX_METADATA_BYTES = 64 * 1024


# --- input checks ---------------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_in(data: dict[str, Any], key: str, lo: int, hi: int, errors: dict[str, list[str]]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not is_int(value) or not lo <= value <= hi:
        errors[key] = [f"Expected an integer from {lo} to {hi}."]
        return None
    return value


def text(
    data: dict[str, Any], key: str, max_len: int, errors: dict[str, list[str]], *, required: bool
) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            errors[key] = ["This field is required."]
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > max_len:
        errors[key] = [f"Expected a string of {1 if required else 0} to {max_len} characters."]
        return None
    return value


def lease_token_of(data: dict[str, Any], errors: dict[str, list[str]]) -> str:
    return text(data, "lease_token", 64, errors, required=True) or ""


def check_size(value: Any, what: str) -> None:
    if value is not None and len(json.dumps(value)) > settings.SPINDLE_MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"The {what} is larger than {settings.SPINDLE_MAX_PAYLOAD_BYTES} bytes.")


def error_object(value: Any) -> tuple[dict[str, Any] | None, list[str] | None]:
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


def raise_if(errors: dict[str, Any]) -> None:
    if errors:
        raise ValidationFailed(details=errors)


LONG_POLL_BUDGET_DOC = (
    "Long-polls are budgeted so they cannot pin the web threads: at most SPINDLE_LONGPOLL_MAX_PER_PROCESS "
    "waiting claims per web process (default 4) and SPINDLE_LONGPOLL_MAX_PER_WORKSPACE per workspace (default 2). "
    "A claim that finds nothing and is over budget answers at once with what is available (an empty `data`) and "
    "the header `Spindle-Long-Poll: refused`; back off a little (e.g. 1 s) before claiming again."
)


class ClaimParams(NamedTuple):
    """A claim's options, named as jobs.services.pull.jobs_claim_pull takes them."""

    worker_id: str | None
    limit: int
    lease_ms: int | None  # None: each queue's own
    wait_ms: int


def claim_params(data: dict[str, Any], errors: dict[str, list[str]]) -> ClaimParams:
    """The claim options of a body; raises ValidationFailed with `errors` and theirs, if any."""
    worker_id = text(data, "worker_id", 40, errors, required=False)
    limit = int_in(data, "limit", 1, MAX_CLAIM, errors) or 1
    lease_ms = int_in(data, "lease_ms", settings.SPINDLE_MIN_LEASE_MS, MAX_LEASE_MS, errors)
    wait_ms = int_in(data, "wait_ms", 0, MAX_WAIT_MS, errors) or 0
    raise_if(errors)
    return ClaimParams(worker_id, limit, lease_ms, wait_ms)


def ack_item_problems(entry: Any, allowed: set[str], success: bool) -> dict[str, list[str]]:
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
        _, error_problems = error_object(entry.get("error"))
        if error_problems:
            problems["error"] = error_problems
        if not isinstance(entry.get("retry", True), bool):
            problems["retry"] = ["Expected a boolean."]
    return problems


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
    fields={
        "acked": serializers.IntegerField(),
        "lease_lost": serializers.ListField(child=serializers.CharField()),
    },
)
ClaimOutSchema = inline_serializer("PullClaimOut", fields={"data": LeasedJobSchema(many=True)})
