"""The job's shape, declared once, and JobSpec: a validated job to create.

`JOB_FIELDS` lists every name the API knows for a job, in the order of the job object (API.md, Jobs). The
response (`jobs.serializers.job_to_dict`), its OpenAPI component (`JobSchema`), the admin's read-only fields, the
create and PATCH field checks (`jobs.validation`, `jobs.services.operations`) and the enqueue mapping
(`jobs.services.enqueue`) all derive from it. `jobs.validation` produces JobSpecs; `jobs.services.enqueue`
inserts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from rest_framework import serializers

JOB_STATES = ["waiting", "delayed", "active", "completed", "failed", "cancelled"]


@dataclass(frozen=True)
class JobField:
    name: str
    # The field of the OpenAPI job object; None: not part of the response.
    doc: Callable[[], serializers.Field] | None
    create: bool = False  # an enqueue body may set it
    edit: bool = False  # a PATCH body may set it
    column: str | None = None  # the model field behind it, when it is not `name`
    timestamp: bool = False  # rendered as ISO 8601


def _char(**kwargs: Any) -> Callable[[], serializers.Field]:
    return lambda: serializers.CharField(**kwargs)


def _json() -> Callable[[], serializers.Field]:
    return lambda: serializers.JSONField(allow_null=True)


def _int(**kwargs: Any) -> Callable[[], serializers.Field]:
    return lambda: serializers.IntegerField(**kwargs)


def _time(**kwargs: Any) -> Callable[[], serializers.Field]:
    return lambda: serializers.DateTimeField(**kwargs)


JOB_FIELDS: tuple[JobField, ...] = (
    JobField("id", _char()),
    JobField("queue", _char()),
    JobField("name", _char(allow_null=True), create=True),
    JobField("payload", _json(), create=True, edit=True),
    JobField("tags", lambda: serializers.ListField(child=serializers.CharField()), create=True, edit=True),
    JobField("state", lambda: serializers.ChoiceField(choices=JOB_STATES)),
    JobField("priority", _int(min_value=-100, max_value=100), create=True, edit=True),
    JobField("run_at", _time(), create=True, edit=True, timestamp=True),
    JobField("attempts", _int()),
    JobField("max_attempts", _int(), create=True),
    JobField("deferrals", _int()),
    JobField("retry_policy", _json(), create=True),
    JobField("timeout_ms", _int(allow_null=True), create=True),
    JobField("idempotency_key", _char(allow_null=True), create=True),
    JobField("group", _char(allow_null=True), create=True),
    JobField("parent_id", _char(allow_null=True), create=True),
    JobField("wait_for_children", lambda: serializers.BooleanField(), create=True),
    JobField("ignore_child_failures", lambda: serializers.BooleanField(), create=True),
    JobField("http", _json(), create=True),
    JobField("progress", _json()),
    JobField("result", _json()),
    JobField("last_error", _json()),
    JobField("lease_expires_at", _time(allow_null=True), timestamp=True),
    JobField(
        "schedule", _char(allow_null=True), column="schedule_id"
    ),  # its name: filled by callers that know it
    JobField("replay_of", _char(allow_null=True)),
    JobField("created_at", _time(), timestamp=True),
    JobField("started_at", _time(allow_null=True), timestamp=True),
    JobField("finished_at", _time(allow_null=True), timestamp=True),
    JobField("updated_at", _time(), timestamp=True),
    # Request-only: enqueue takes it instead of run_at; a PATCH names it read-only.
    JobField("delay_ms", None, create=True),
    # A column a create body may name (answered "read-only"); never rendered (a lease token is the worker's secret).
    JobField("lease_token", None),
)

RESPONSE_FIELDS = tuple(f for f in JOB_FIELDS if f.doc is not None)
# POST bodies: what may be set, and the other names of a job, which are refused as read-only rather than unknown.
CREATE_FIELDS = frozenset(f.name for f in JOB_FIELDS if f.create)
CREATE_READ_ONLY_FIELDS = frozenset(f.name for f in JOB_FIELDS if not f.create)
# PATCH bodies: the same for an edit; a name the response and the create body never carry is unknown here.
EDIT_FIELDS = frozenset(f.name for f in JOB_FIELDS if f.edit)
EDIT_READ_ONLY_FIELDS = frozenset(
    f.name for f in JOB_FIELDS if not f.edit and (f.doc is not None or f.create)
)
# What the engine owns (staff admin shows them read-only), as model fields: every response field a client
# cannot set, plus columns the API never shows, plus run_at and parent (state and flow release depend on them).
ENGINE_COLUMNS = frozenset({f.column or f.name for f in JOB_FIELDS if not f.create}) | {
    "workspace",
    "run_at",
    "parent",
    "execution_id",
    "worker_id",
    "cancel_requested",
}


@dataclass
class JobSpec:
    payload: Any = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    priority: int = 0
    run_at: datetime | None = None  # None: now
    max_attempts: int | None = None  # None: from the retry policy (job's, else the queue's)
    retry_policy: dict[str, Any] | None = None
    timeout_ms: int | None = None
    idempotency_key: str | None = None
    group: str | None = None
    parent_id: str | None = None
    wait_for_children: bool = False
    ignore_child_failures: bool = False
    http: dict[str, Any] | None = None
    schedule_id: str | None = None
    replay_of: str | None = None


# JobSpec carries exactly the creatable fields (delay_ms becomes run_at) and the two links only services set.
assert {f.name for f in fields(JobSpec)} == CREATE_FIELDS - {"delay_ms"} | {"schedule_id", "replay_of"}
# The job columns enqueue copies from a spec as they are; run_at and max_attempts have defaults to resolve.
SPEC_COLUMNS = tuple(f.name for f in fields(JobSpec) if f.name not in ("run_at", "max_attempts"))

# A streamed batch is checked, built and written this many jobs at a time (jobs/services/enqueue_sql.py), a smaller
# first chunk so that PostgreSQL starts early.
STREAM_FIRST_CHUNK, STREAM_CHUNK = 100, 300


@dataclass
class SpecStream:
    """A large batch's JobSpecs, validated a chunk at a time as the enqueue takes them
    (`JobValidator.validate_many`).

    `chunks` yields each chunk's specs in input order and, after the last one, raises the batch's errors; once an
    item has failed nothing more is yielded. Only a batch whose checks need no I/O and read no job (no per-job
    `http` target, whose host is looked up; no idempotency key) is streamed, so its checks may run inside the
    enqueue's transaction, while PostgreSQL writes the chunks before them."""

    count: int
    chunks: Iterator[list[JobSpec]]

    def all(self) -> list[JobSpec]:
        """Every spec, validated (raises the batch's errors)."""
        return [spec for chunk in self.chunks for spec in chunk]
