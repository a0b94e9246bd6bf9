"""The API operations the client calls, each as the OpenAPI document names it.

A client method is marked with the operations it calls (`calls`); tests/client checks every one against the
server's document: the method and path exist with this operationId, the query and header parameters the client
sends are declared, the body fields are in the request component, and the response model matches its component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from spindle_client import models

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    model: type[models.Model] | None = None
    paginated: bool = False  # the answer is the list envelope {"data": [model…], "next_cursor"}
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    body: tuple[str, ...] = ()

    def url(self, **params: str) -> str:
        """The path with its parameters filled in (each escaped: a name never adds a path segment)."""
        return self.path.format(**{k: quote(v, safe="") for k, v in params.items()})


def calls(*operations: Operation) -> Callable[[F], F]:
    """Mark a client method with the operations it calls (read by the schema test)."""

    def mark(method: F) -> F:
        method.operations = operations  # type: ignore[attr-defined]
        return method

    return mark


PAGE = ("limit", "cursor")
JOB_FILTERS = ("state", "tag", "name", "group", *PAGE)
# The fields `Spindle.enqueue` can send (component JobEnqueueInRequest).
ENQUEUE_FIELDS = (
    "payload", "name", "tags", "priority", "delay_ms", "run_at", "max_attempts", "retry_policy",
    "timeout_ms", "group", "parent_id", "http",
)  # fmt: skip
QUEUE_FIELDS = ("name", "delivery", "endpoint", "concurrency", "retry_policy", "lease_ms")

ENQUEUE = Operation(
    "POST", "/v1/queues/{queue_name}/jobs", "jobs_enqueue", models.Job,
    headers=("Idempotency-Key",), body=ENQUEUE_FIELDS,
)  # fmt: skip
JOB = Operation("GET", "/v1/queues/{queue_name}/jobs/{job_id}", "jobs_retrieve", models.Job)
QUEUE_JOBS = Operation("GET", "/v1/queues/{queue_name}/jobs", "jobs_list", models.Job, True, JOB_FILTERS)
ALL_JOBS = Operation("GET", "/v1/jobs", "jobs_list_all", models.Job, True, ("queue", *JOB_FILTERS))
RETRY = Operation("POST", "/v1/queues/{queue_name}/jobs/{job_id}/retry", "queues_jobs_retry", models.Job)
CANCEL = Operation("POST", "/v1/queues/{queue_name}/jobs/{job_id}/cancel", "queues_jobs_cancel", models.Job)
DLQ = Operation("GET", "/v1/queues/{queue_name}/dlq", "queues_dlq_list", models.Job, True, PAGE)
QUEUES = Operation("GET", "/v1/queues", "queues_list", models.Queue, True, PAGE)
QUEUE = Operation("GET", "/v1/queues/{queue_name}", "queues_retrieve", models.Queue)
CREATE_QUEUE = Operation(
    "POST",
    "/v1/queues",
    "queues_create",
    models.CreatedQueue,
    headers=("Idempotency-Key",),
    body=QUEUE_FIELDS,
)
SCHEDULES = Operation("GET", "/v1/schedules", "schedules_list", models.Schedule, True, PAGE)
# The event streams answer text/event-stream; their JSON form (the same events) is what the model is checked on.
EVENTS = Operation("GET", "/v1/events", "events_list", models.Event, True, headers=("Last-Event-ID",))
QUEUE_EVENTS = Operation(
    "GET",
    "/v1/queues/{queue_name}/events",
    "queues_events_list",
    models.Event,
    True,
    headers=("Last-Event-ID",),
)
