"""The API's objects as typed dataclasses, one per OpenAPI component (field names are the component's).

`from_dict` ignores fields it does not know, so a server that adds fields never breaks an older client, and
fills the ones it lacks with None. tests/client checks that each dataclass's fields lie within its component's
properties and cover the component's required ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self

JobState = Literal["waiting", "delayed", "active", "completed", "failed", "cancelled"]


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 with a `Z` or an offset (the API's timestamps) to an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def format_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class Model:
    """Conversion shared by the dataclasses below."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            value = data.get(field.name)
            # Annotations are strings here (postponed evaluation): the datetime fields say so in theirs.
            values[field.name] = parse_time(value) if "datetime" in str(field.type) else value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The object as the API renders it (timestamps back to ISO 8601 UTC)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            out[field.name] = format_time(value) if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class Job(Model):
    """A job (component JobSchema)."""

    id: str
    queue: str
    name: str | None
    payload: Any
    tags: list[str]
    state: JobState
    priority: int
    run_at: datetime | None
    attempts: int
    max_attempts: int
    deferrals: int
    retry_policy: dict[str, Any] | None
    timeout_ms: int | None
    idempotency_key: str | None
    group: str | None
    parent_id: str | None
    wait_for_children: bool
    ignore_child_failures: bool
    http: dict[str, Any] | None
    progress: Any
    result: Any
    last_error: dict[str, Any] | None
    lease_expires_at: datetime | None
    schedule: str | None
    replay_of: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Queue(Model):
    """A queue (component QueueSchema); `counts` maps each job state to its number of jobs."""

    name: str
    delivery: Literal["push", "pull"]
    endpoint: dict[str, Any] | None
    paused: bool
    paused_job_names: list[str]
    concurrency: int
    group_concurrency: int | None
    rate_limit: dict[str, Any] | None
    retry_policy: dict[str, Any]
    lease_ms: int
    counts: dict[str, int]
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class CreatedQueue(Queue):
    """A queue as its creation answers it (component QueueWithSecretSchema): the signing secret, shown once."""

    signing_secret: str | None = None


@dataclass(frozen=True)
class Schedule(Model):
    """A cron or interval schedule (component ScheduleSchema); `job` is the template of the jobs it enqueues."""

    name: str
    description: str
    queue: str
    cron: str | None
    interval_ms: int | None
    timezone: str | None
    job: dict[str, Any]
    overlap: Literal["allow", "skip"]
    paused: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: str | None
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Event(Model):
    """One event of the stream (component EventSchema): `type` is `job:waiting`, `job:failed`, `queue:paused`…"""

    id: str
    type: str
    queue: str | None
    job_id: str | None
    data: dict[str, Any]
    created_at: datetime | None
