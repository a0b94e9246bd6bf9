"""Enqueue, get and list jobs (API.md "Jobs"). Thin: validate, call the service or selector, render."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import Companion
from accounts.models import Workspace
from config.api import PrerenderedResponse, WorkspaceViewSet, error_responses, list_envelope, render_json
from config.exceptions import NotFound, ValidationFailed
from config.idempotency import IDEMPOTENCY_KEY_PARAMETER, creates, idempotent
from config.pagination import paginate
from jobs.models import JobState
from jobs.selectors import (
    children_state_counts,
    flow_parent_list,
    job_filters_from_params,
    job_get_any,
    job_list,
    job_state_from_params,
    workspace_state_counts,
)
from jobs.serializers import JobSchema, job_to_dict
from jobs.services.enqueue import job_enqueue, job_enqueue_batch, queue_by_name
from jobs.specs import CREATE_FIELDS
from jobs.validation import MAX_BATCH, JobValidator
from jobs.views.route_queue import QUEUE_OF_ROUTE, route_queue
from queues.models import Queue
from queues.selectors import queue_get


class JobHttpTargetIn(serializers.Serializer):
    url = serializers.URLField(help_text="Public http(s) URL (private and loopback addresses are refused).")
    method = serializers.ChoiceField(choices=["GET", "POST", "PUT", "PATCH", "DELETE"], default="POST")
    headers = serializers.DictField(child=serializers.CharField(), required=False)
    body = serializers.CharField(required=False, allow_null=True, help_text="At most 1 MiB.")


class JobRetryPolicyIn(serializers.Serializer):
    max_attempts = serializers.IntegerField(min_value=1, max_value=100, required=False)
    backoff = serializers.ChoiceField(choices=["exponential", "fixed"], required=False)
    initial_delay_ms = serializers.IntegerField(min_value=0, required=False)
    multiplier = serializers.FloatField(min_value=1, max_value=10, required=False)
    max_delay_ms = serializers.IntegerField(min_value=0, required=False)
    jitter = serializers.BooleanField(required=False)


class JobEnqueueIn(serializers.Serializer):
    """Documentation of a job to enqueue (validated by jobs.validation, not by this serializer)."""

    payload = serializers.JSONField(
        required=False, allow_null=True, help_text="Any JSON, at most 1 MiB (else 413)."
    )
    name = serializers.CharField(required=False, allow_null=True, min_length=1, max_length=128)
    tags = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=64), max_length=10, required=False
    )
    priority = serializers.IntegerField(
        min_value=-100, max_value=100, required=False, help_text="Higher runs first."
    )
    delay_ms = serializers.IntegerField(
        min_value=0,
        max_value=31_536_000_000,
        required=False,
        help_text="Input only; sets run_at. Not with run_at.",
    )
    run_at = serializers.DateTimeField(
        required=False, help_text="ISO 8601 with a timezone. Not with delay_ms."
    )
    max_attempts = serializers.IntegerField(
        min_value=1, max_value=100, required=False, help_text="Above the plan's cap: 402 PLAN_LIMIT."
    )
    retry_policy = JobRetryPolicyIn(
        required=False, allow_null=True, help_text="Merged over the queue's policy."
    )
    timeout_ms = serializers.IntegerField(
        min_value=100,
        max_value=300_000,
        required=False,
        allow_null=True,
        help_text="Above the plan's cap: 402.",
    )
    idempotency_key = serializers.CharField(
        required=False,
        allow_null=True,
        min_length=1,
        max_length=255,
        help_text="If the queue has a job with this key from the last 24 h, that job is returned (200).",
    )
    group = serializers.CharField(required=False, allow_null=True, min_length=1, max_length=128)
    parent_id = serializers.CharField(
        required=False, allow_null=True, help_text="An existing job of this workspace."
    )
    wait_for_children = serializers.BooleanField(required=False)
    ignore_child_failures = serializers.BooleanField(required=False)
    http = JobHttpTargetIn(
        required=False, allow_null=True, help_text="Per-job push target (overrides the endpoint)."
    )


# The request's documentation adds bounds and help texts; its field names come from the one job declaration.
assert set(JobEnqueueIn._declared_fields) == CREATE_FIELDS, (
    "JobEnqueueIn must document exactly jobs.specs' create fields"
)


class JobEnqueueAnyIn(JobEnqueueIn):
    """POST /v1/jobs: a job body plus the queue it goes to."""

    queue = serializers.CharField(
        help_text="Name of the queue (required; an unknown queue is 404 NOT_FOUND)."
    )


class JobBatchEnqueueIn(serializers.Serializer):
    jobs = JobEnqueueIn(many=True, help_text=f"1 to {MAX_BATCH} jobs.")


_JOB_FILTERS = [
    OpenApiParameter("state", str, enum=JobState.values, description="Only jobs in this state (else 400)."),
    OpenApiParameter("tag", str, description="Only jobs carrying this tag."),
    OpenApiParameter("name", str, description="Only jobs with this name."),
    OpenApiParameter("group", str, description="Only jobs of this group."),
    OpenApiParameter(
        "parent", str, description="Only flow children of this job (`job_…`); else 400 if malformed."
    ),
    OpenApiParameter("limit", int, description="1 to 1000 (default 50); more is 400 BAD_REQUEST."),
    OpenApiParameter("cursor", str, description="next_cursor of the previous page."),
]

_BATCH_ERRORS = (
    "All or nothing: if any item is invalid nothing is created, and 400 VALIDATION_ERROR lists every item's errors "
    'under flat dotted keys `jobs.<index>.<field>`, e.g. `{"jobs.3.priority": ["…"], "jobs.7.http.url": ["…"]}`. '
    "A payload over the limit is 413 PAYLOAD_TOO_LARGE (details key `jobs.<index>.payload`); a value above a plan "
    "cap is 402 PLAN_LIMIT; not enough monthly quota for every new job is 402 QUOTA_EXCEEDED."
)


def _enqueue_schema(operation_id: str, request: Any, description: str) -> dict[str, Any]:
    """The OpenAPI of a single-job enqueue (per-queue and top-level routes answer alike)."""
    return {
        "tags": ["Jobs"],
        "operation_id": operation_id,
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "request": request,
        "responses": {
            201: JobSchema,
            200: OpenApiResponse(
                JobSchema, description="The body idempotency_key matched a job of the last 24 h."
            ),
            **error_responses(400, 401, 402, 404, 409, 413, 415, 422),
        },
        "description": description,
    }


def _enqueue_one(workspace: Workspace, queue: Queue, body: Any) -> Response:
    """Validate and enqueue one job: 201 when created, 200 when its idempotency_key matched an existing job."""
    spec = JobValidator(workspace=workspace, queue=queue).validate_one(body)
    job, created = job_enqueue(workspace=workspace, queue=queue, spec=spec)
    return Response(
        job_to_dict(job, queue_name=queue.name),
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


class QueueJobsViewSet(WorkspaceViewSet):
    """/v1/queues/{name}/jobs[...]"""

    @property
    def auth_companion(self) -> Companion | None:
        return QUEUE_OF_ROUTE if self.action == "create" else None  # the single enqueue's queue, with the key

    def _render(self, rows: Any, queue_name: str) -> list[dict[str, Any]]:
        return [job_to_dict(job, queue_name=queue_name) for job in rows]

    @extend_schema(**_enqueue_schema("jobs_enqueue", JobEnqueueIn, "Enqueue one job."))
    @idempotent
    def create(self, request: Request, name: str) -> Response:
        # The hot path of single enqueues: the queue came with the API key (same 404 as queue_get).
        queue = route_queue(request, self.workspace, name)
        if queue is None:
            raise NotFound(f"Queue '{name}' not found.")
        return _enqueue_one(self.workspace, queue, request.data)

    @creates(
        JobBatchEnqueueIn,
        inline_serializer("JobBatchOut", fields={"data": JobSchema(many=True)}),
        errors=(400, 401, 402, 404, 409, 413, 415, 422),
        tags=["Jobs"],
        operation_id="jobs_enqueue_batch",
        description=(
            f"Enqueue up to {MAX_BATCH} jobs in one transaction, all or nothing; `data` is in input order. "
            "An item whose idempotency_key matches a job of the last 24 h (or an earlier item of the same batch) "
            "gives that job and is not counted against the quota. " + _BATCH_ERRORS
        ),
    )
    def batch(self, request: Request, name: str) -> Response:
        # The queue first: another workspace's queue is a 404 whatever the body holds.
        queue = queue_get(workspace=self.workspace, name=name)
        data = self.strict_data(request, {"jobs"})
        if "jobs" not in data:
            raise ValidationFailed(details={"jobs": ["This field is required."]})
        # A large batch may come back as a SpecStream: its items are then checked while the first ones are written.
        specs = JobValidator(workspace=self.workspace, queue=queue).validate_many(data["jobs"])
        queue_name = queue.name

        def present(results: list) -> tuple[dict, bytes]:
            # Built and rendered while PostgreSQL writes a large batch (job_enqueue_batch).
            data = {"data": [job_to_dict(job, queue_name=queue_name) for job, _ in results]}
            return data, render_json(data)

        data, body = job_enqueue_batch(workspace=self.workspace, queue=queue, specs=specs, present=present)
        return PrerenderedResponse(data, body, status=201)

    @extend_schema(
        tags=["Jobs"],
        operation_id="jobs_list",
        parameters=_JOB_FILTERS,
        responses={200: list_envelope("JobList", JobSchema), **error_responses(400, 401, 404)},
        description="Jobs of the queue, newest first (keyset pagination on id).",
    )
    def list(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        filters = job_filters_from_params(request.query_params)
        queryset = job_list(workspace=self.workspace, queue=queue, filters=filters)
        return Response(paginate(queryset, request.query_params, lambda rows: self._render(rows, queue.name)))


class JobsViewSet(WorkspaceViewSet):
    """/v1/jobs[...]: every queue of the workspace (the Spooled-style top-level routes)."""

    @extend_schema(
        tags=["Jobs"],
        operation_id="jobs_list_all",
        parameters=[
            *_JOB_FILTERS,
            OpenApiParameter("queue", str, description="Only jobs of this queue (by name)."),
        ],
        responses={200: list_envelope("JobListAll", JobSchema), **error_responses(400, 401)},
        description="Jobs across the workspace's queues, newest first (keyset pagination on id).",
    )
    def list(self, request: Request) -> Response:
        filters = job_filters_from_params(request.query_params, allow_queue=True)
        queryset = job_list(workspace=self.workspace, filters=filters)
        return Response(paginate(queryset, request.query_params, _render_with_queue))

    @extend_schema(
        **_enqueue_schema(
            "jobs_enqueue_any",
            JobEnqueueAnyIn,
            (
                "Enqueue one job into the queue named by `queue` in the body. Same semantics as "
                "`POST /v1/queues/{name}/jobs` (validation, quota, body `idempotency_key`, `Idempotency-Key` header); "
                "a missing `queue` is 400 VALIDATION_ERROR, an unknown (or another workspace's) queue is 404 NOT_FOUND."
            ),
        )
    )
    @idempotent
    def create(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", details={"non_field_errors": ["Expected a JSON object."]}
            )
        body = dict(data)
        name = body.pop("queue", None)
        if not isinstance(name, str) or not name:
            raise ValidationFailed(details={"queue": ["This field is required: the name of a queue."]})
        queue = queue_by_name(workspace_id=self.workspace.id, name=name) if len(name) <= 64 else None
        if queue is None:
            raise NotFound(f"Queue '{name}' not found.")
        return _enqueue_one(self.workspace, queue, body)

    @extend_schema(
        tags=["Jobs"],
        operation_id="jobs_retrieve_any",
        responses={200: JobSchema, **error_responses(401, 404)},
        description="One job of the workspace by id, whatever its queue (another workspace's job is 404).",
    )
    def retrieve(self, request: Request, job_id: str) -> Response:
        return Response(job_to_dict(job_get_any(workspace=self.workspace, job_id=job_id)))


def _state_counts(name: str) -> serializers.Serializer:
    """An OpenAPI object of one integer per job state, under its own component name."""
    return inline_serializer(name, fields={state: serializers.IntegerField() for state in JobState.values})


class FlowListItemSchema(JobSchema):
    children = _state_counts("FlowChildrenCounts")


class FlowsViewSet(WorkspaceViewSet):
    """/v1/flows: flow parents (seed 002 `GET /api/flows`)."""

    @extend_schema(
        tags=["Jobs"],
        operation_id="flows_list",
        parameters=[
            OpenApiParameter(
                "state", str, enum=JobState.values, description="Only parents in this state (else 400)."
            ),
            OpenApiParameter("limit", int, description="1 to 1000 (default 50); more is 400 BAD_REQUEST."),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page."),
        ],
        responses={200: list_envelope("FlowList", FlowListItemSchema), **error_responses(400, 401)},
        description=(
            "Flow parents across the workspace's queues, newest first (keyset pagination on id): every job created "
            "with `wait_for_children: true` and every job that some job names as `parent_id`. Each item is the job "
            "plus `children`: how many of its children are in each state. List them with "
            "`GET /v1/jobs?parent={id}` or `GET /v1/queues/{name}/jobs/{id}/children`."
        ),
    )
    def list(self, request: Request) -> Response:
        state = job_state_from_params(request.query_params)
        queryset = flow_parent_list(workspace=self.workspace, state=state)
        workspace = self.workspace

        def render(rows: Any) -> list[dict[str, Any]]:
            rows = list(rows)
            counts = children_state_counts(workspace=workspace, parent_ids=[job.id for job in rows])
            return [{**job_to_dict(job), "children": counts[job.id]} for job in rows]

        return Response(paginate(queryset, request.query_params, render))


_STATE_COUNTS = _state_counts("JobStateCounts")


class MetricsStatusViewSet(WorkspaceViewSet):
    """/v1/metrics/status (seed 002: "check if metrics are enabled")."""

    @extend_schema(
        tags=["Queues"],
        operation_id="metrics_status",
        responses={
            200: inline_serializer(
                "MetricsStatus",
                fields={
                    "enabled": serializers.BooleanField(
                        help_text="Always true: Spindle writes its per-minute rollup whenever attempts finish."
                    ),
                    "counts": _STATE_COUNTS,
                    "by_queue": inline_serializer(
                        "MetricsStatusQueue",
                        fields={"queue": serializers.CharField(), "counts": _STATE_COUNTS},
                        many=True,
                    ),
                },
            ),
            **error_responses(401),
        },
        description=(
            "Whether metrics are on (always, in Spindle) and the live number of jobs in each state, over the whole "
            "workspace (`counts`) and per queue (`by_queue`, by name, queues without jobs included with zeros)."
        ),
    )
    def status(self, request: Request) -> Response:
        totals, by_queue = workspace_state_counts(workspace=self.workspace)
        return Response({"enabled": True, "counts": totals, "by_queue": by_queue})


def _render_with_queue(rows: Any) -> list[dict[str, Any]]:
    # Queue names come from select_related("queue") in job_list: no query per row.
    return [job_to_dict(job) for job in rows]
