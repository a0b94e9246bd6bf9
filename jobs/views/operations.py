"""The operator's routes (API.md, Queues "Operations" and Jobs): bulk queue operations, job edits and state
changes, flow children, the dead-letter queue, search and replay. Thin: validate, call a service, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import PAGE_PARAMETERS, WorkspaceViewSet, error_responses, list_envelope, validated
from config.exceptions import BadRequest, ValidationFailed
from config.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from config.pagination import decode_cursor, encode_cursor, paginate, parse_limit
from jobs.models import Job
from jobs.queue_selectors import queue_counts
from jobs.selectors import job_get, job_in_queue
from jobs.serializers import JobSchema, job_to_dict
from jobs.services import operations as ops
from queues.selectors import queue_get
from queues.serializers import queue_to_dict
from queues.views import NAME_PARAM

JOB_PARAM = OpenApiParameter(
    "job_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Job id (`job_…`)"
)
MAX_GRACE_MS = 3_650 * 86_400_000  # ten years
AFFECTED = inline_serializer("Affected", fields={"affected": serializers.IntegerField()})


class CleanIn(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["waiting", "delayed", "completed", "failed", "cancelled"],
        help_text="Terminal states are aged by finished_at; waiting and delayed by created_at (active: not allowed).",
    )
    # Bounded: `now - grace_ms` must stay a datetime (1e18 ms overflowed into a 500).
    grace_ms = serializers.IntegerField(min_value=0, max_value=MAX_GRACE_MS, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=ops.CLEAN_MAX_LIMIT, required=False, default=1000)


class RetryAllIn(serializers.Serializer):
    state = serializers.ChoiceField(choices=["failed", "completed"])


class DlqRetryIn(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.CharField(max_length=40), max_length=ops.DLQ_RETRY_MAX_IDS, required=False
    )


class JobPatchIn(serializers.Serializer):
    payload = serializers.JSONField(required=False, help_text="Any JSON, up to 1 MiB")
    priority = serializers.IntegerField(min_value=-100, max_value=100, required=False)
    tags = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=64), max_length=10, required=False
    )
    run_at = serializers.DateTimeField(required=False, help_text="ISO 8601 with a timezone")


class GroupSchema(serializers.Serializer):
    group = serializers.CharField()
    active = serializers.IntegerField()
    waiting = serializers.IntegerField()


def _check_types(data: dict[str, Any], ints: tuple[str, ...] = (), strings: tuple[str, ...] = ()) -> None:
    """DRF coerces "5" to 5 and 5 to "5"; API.md wants a wrong JSON type to be a 400."""
    errors = {}
    for key in ints:
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool)):
            errors[key] = ["A valid integer is required."]
    for key in strings:
        if key in data and not isinstance(data[key], str):
            errors[key] = ["A valid string is required."]
    if errors:
        raise ValidationFailed(details=errors)


def _render_jobs(rows: Any) -> list[dict[str, Any]]:
    return [job_to_dict(j) for j in rows]


def _affecting(
    tag: str, body: type[serializers.Serializer] | None, errors: tuple[int, ...], description: str
) -> Any:
    """The schema of an operation on the named queue that answers `{"affected": n}`."""
    return extend_schema(
        tags=[tag],
        parameters=[NAME_PARAM],
        request=body,
        responses={200: AFFECTED, **error_responses(*errors)},
        description=description,
    )


def _bodiless_operation(operation: Callable[..., int], description: str) -> Callable[..., Response]:
    """A bulk operation on the named queue that takes no body (drain, promote): the two check and answer the same
    way, `{"affected": n}`; only the operation differs."""

    @_affecting("Queue operations", None, (400, 401, 404), description)
    def action(self: QueueOperationsViewSet, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        self.strict_data(request, set())
        return Response({"affected": operation(workspace=self.workspace, queue=queue)})

    return action


class QueueOperationsViewSet(WorkspaceViewSet):
    """Bulk operations on one queue and its dead-letter queue; each answers `{"affected": n}`."""

    drain = _bodiless_operation(
        ops.queue_drain,
        "Remove every waiting and delayed job (in bounded batches). Emits `job:removed` per job and "
        "`queue:drained`.",
    )

    @_affecting(
        "Queue operations",
        CleanIn,
        (400, 401, 404, 415),
        "Remove up to `limit` jobs in `state` older than `grace_ms`: completed/failed/cancelled jobs "
        "that finished more than grace_ms ago, or waiting/delayed jobs created more than "
        "grace_ms ago (each removal emits `job:removed`). Active jobs cannot be cleaned.",
    )
    def clean(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        data = self.strict_data(request, set(CleanIn._declared_fields))
        _check_types(data, ints=("grace_ms", "limit"), strings=("state",))
        valid = validated(CleanIn, data)
        affected = ops.queue_clean(
            workspace=self.workspace,
            queue=queue,
            state=valid["state"],
            grace_ms=valid["grace_ms"],
            limit=valid["limit"],
        )
        return Response({"affected": affected})

    @_affecting(
        "Queue operations",
        RetryAllIn,
        (400, 401, 402, 404, 415),
        "Re-run every job in `state` (failed or completed): back to waiting, attempts reset. Each "
        "re-run counts one job against the monthly quota, all or nothing: if the quota cannot cover every "
        "matching job, 402 `QUOTA_EXCEEDED` and no job is changed.",
    )
    def retry(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        data = self.strict_data(request, {"state"})
        _check_types(data, strings=("state",))
        valid = validated(RetryAllIn, data)
        return Response(
            {"affected": ops.queue_retry_jobs(workspace=self.workspace, queue=queue, state=valid["state"])}
        )

    promote = _bodiless_operation(
        ops.queue_promote_jobs,
        "Make every delayed job ready now (not flow parents waiting for their children).",
    )

    @extend_schema(
        tags=["Queue operations"],
        parameters=[NAME_PARAM, *PAGE_PARAMETERS],
        responses={200: list_envelope("GroupList", GroupSchema), **error_responses(400, 401, 404)},
        description="Distinct job `group` keys with their active and waiting counts, by name.",
    )
    def groups(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        limit = parse_limit(request.query_params)
        cursor = request.query_params.get("cursor")
        after = decode_cursor(cursor) if cursor else None
        rows = ops.queue_groups(workspace=self.workspace, queue=queue, after=after, limit=limit + 1)
        next_cursor = encode_cursor(rows[limit - 1]["group"]) if len(rows) > limit else None
        return Response({"data": rows[:limit], "next_cursor": next_cursor})

    @extend_schema(
        tags=["Dead-letter queue"],
        parameters=[NAME_PARAM, *PAGE_PARAMETERS],
        responses={200: list_envelope("DlqList", JobSchema), **error_responses(400, 401, 404)},
        description="The queue's failed jobs, newest first.",
    )
    def dlq(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)

        def render(rows: Any) -> list[dict[str, Any]]:
            return [job_to_dict(j, queue_name=queue.name) for j in rows]

        return Response(
            paginate(ops.dlq_jobs(workspace=self.workspace, queue=queue), request.query_params, render)
        )

    @_affecting(
        "Dead-letter queue",
        DlqRetryIn,
        (400, 401, 402, 404, 415),
        "Retry the failed jobs in `ids` (up to 1,000), or all of them without `ids`. Each retried "
        "job counts one job against the monthly quota, all or nothing: if the quota cannot cover every failed "
        "job selected, 402 `QUOTA_EXCEEDED` and no job is changed.",
    )
    def dlq_retry(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        data = self.strict_data(request, {"ids"})
        if (
            "ids" in data
            and isinstance(data["ids"], list)
            and not all(isinstance(i, str) for i in data["ids"])
        ):
            raise ValidationFailed(details={"ids": ["Must be a list of job ids."]})
        ids = validated(DlqRetryIn, data).get("ids") or None
        return Response({"affected": ops.dlq_retry(workspace=self.workspace, queue=queue, ids=ids)})

    @_affecting(
        "Dead-letter queue", None, (401, 404), "Delete every failed job of the queue (in bounded batches)."
    )
    def dlq_purge(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        return Response({"affected": ops.dlq_purge(workspace=self.workspace, queue=queue)})


@extend_schema(tags=["Jobs"])
class JobOperationsViewSet(WorkspaceViewSet):
    """One job: read, edit, cancel/delete, retry, promote, and its flow children."""

    def _queue(self, name: str) -> Any:
        return queue_get(workspace=self.workspace, name=name)

    def _control(self, request: Request, name: str, job_id: str, control: Callable[..., Job]) -> Response:
        """A body-less state change of one job (cancel, retry, promote), answered with the job."""
        queue = self._queue(name)
        self.strict_data(request, set())
        job = control(workspace=self.workspace, queue=queue, job_id=job_id)
        return Response(job_to_dict(job, queue_name=queue.name))

    @extend_schema(
        operation_id="jobs_retrieve",
        parameters=[NAME_PARAM, JOB_PARAM],
        responses={200: JobSchema, **error_responses(401, 404)},
        description="One job of the queue.",
    )
    def retrieve(self, request: Request, name: str, job_id: str) -> Response:
        # One query (the job with its queue, by name); the queue is looked up alone only to tell a 404 apart.
        job = job_in_queue(workspace=self.workspace, queue_name=name, job_id=job_id)
        if job is None:
            job_get(workspace=self.workspace, queue=self._queue(name), job_id=job_id)  # raises NOT_FOUND
        return Response(job_to_dict(job, queue_name=name))

    @extend_schema(
        parameters=[NAME_PARAM, JOB_PARAM],
        request=JobPatchIn,
        responses={200: JobSchema, **error_responses(400, 401, 404, 409, 413, 415)},
        description="Edit `payload`, `priority`, `tags` or `run_at` (a future run_at makes a waiting job "
        "delayed and a past one makes a delayed job waiting). 409 `INVALID_STATE` while active.",
    )
    def partial_update(self, request: Request, name: str, job_id: str) -> Response:
        queue = self._queue(name)
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", details={"non_field_errors": ["Expected a JSON object."]}
            )
        job = ops.job_update(workspace=self.workspace, queue=queue, job_id=job_id, data=data)
        return Response(job_to_dict(job, queue_name=queue.name))

    @extend_schema(
        parameters=[NAME_PARAM, JOB_PARAM],
        request=None,
        responses={204: None, **error_responses(401, 404)},
        description="waiting/delayed -> cancelled; terminal -> removed; active -> cancelled and its lease "
        "ended (the running delivery or worker's outcome is refused as lease-lost).",
    )
    def destroy(self, request: Request, name: str, job_id: str) -> Response:
        ops.job_delete(workspace=self.workspace, queue=self._queue(name), job_id=job_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[NAME_PARAM, JOB_PARAM],
        request=None,
        responses={200: JobSchema, **error_responses(401, 404, 409)},
        description="Cancel a waiting, delayed or active job (an active push delivery is abandoned and "
        "not retried; a pull worker's lease ends). 409 `INVALID_STATE` when already finished.",
    )
    def cancel(self, request: Request, name: str, job_id: str) -> Response:
        return self._control(request, name, job_id, ops.job_cancel)

    @extend_schema(
        parameters=[NAME_PARAM, JOB_PARAM],
        request=None,
        responses={200: JobSchema, **error_responses(401, 402, 404, 409)},
        description="failed/completed/cancelled -> waiting with attempts reset; otherwise 409 `INVALID_STATE`. "
        "The re-run counts one job against the monthly quota (402 `QUOTA_EXCEEDED` when used up).",
    )
    def retry(self, request: Request, name: str, job_id: str) -> Response:
        return self._control(request, name, job_id, ops.job_retry)

    @extend_schema(
        parameters=[NAME_PARAM, JOB_PARAM],
        request=None,
        responses={200: JobSchema, **error_responses(401, 404, 409)},
        description="delayed -> waiting now; otherwise 409 `INVALID_STATE`.",
    )
    def promote(self, request: Request, name: str, job_id: str) -> Response:
        return self._control(request, name, job_id, ops.job_promote)

    @extend_schema(
        parameters=[NAME_PARAM, JOB_PARAM, *PAGE_PARAMETERS],
        responses={200: list_envelope("ChildrenList", JobSchema), **error_responses(400, 401, 404)},
        description="The job's flow children (jobs created with `parent_id` = this job), oldest first.",
    )
    def children(self, request: Request, name: str, job_id: str) -> Response:
        children = ops.job_children(workspace=self.workspace, queue=self._queue(name), job_id=job_id)
        return Response(paginate(children, request.query_params, _render_jobs, newest_first=False))


class SearchViewSet(WorkspaceViewSet):
    @extend_schema(
        tags=["Jobs"],
        parameters=[
            OpenApiParameter(
                "q", OpenApiTypes.STR, required=True, description="Job id, name part or payload text"
            ),
            OpenApiParameter(
                "type", OpenApiTypes.STR, enum=["job", "queue", "payload"], description="default job"
            ),
            OpenApiParameter("queue", OpenApiTypes.STR, description="Queue name; required for type=payload"),
            *PAGE_PARAMETERS,
        ],
        responses={200: list_envelope("SearchResults", JobSchema), **error_responses(400, 401, 404)},
        description="`job`: the job with that exact id. `queue`: queues whose name contains q (the list then holds "
        "queue objects). `payload`: jobs of one queue whose payload text contains q, newest first.",
    )
    def search(self, request: Request) -> Response:
        params = request.query_params
        kind = params.get("type") or "job"
        if kind not in ("job", "queue", "payload"):
            raise BadRequest(
                "`type` must be job, queue or payload.", details={"type": ["Expected job, queue or payload."]}
            )
        q = params.get("q") or ""
        if not q:
            raise BadRequest("`q` is required.", details={"q": ["This parameter is required."]})
        workspace = self.workspace
        if kind == "queue":

            def render_queues(rows: Any) -> list[dict[str, Any]]:
                rows = list(rows)
                counts = queue_counts(workspace=workspace, queue_ids=[r.id for r in rows])
                return [queue_to_dict(r, counts=counts[r.id]) for r in rows]

            return Response(paginate(ops.search_queues(workspace=workspace, q=q), params, render_queues))
        jobs = ops.search_jobs(workspace=workspace, kind=kind, q=q, queue_name=params.get("queue") or None)
        return Response(paginate(jobs, params, _render_jobs))


class ReplayViewSet(WorkspaceViewSet):
    @extend_schema(
        tags=["Executions"],
        parameters=[
            OpenApiParameter("execution_id", OpenApiTypes.STR, OpenApiParameter.PATH),
            IDEMPOTENCY_KEY_PARAMETER,
        ],
        request=None,
        responses={
            202: inline_serializer("ReplayResult", fields={"job": JobSchema()}),
            **error_responses(401, 402, 404, 409, 422),
        },
        description="Enqueue a new job with the original's queue, payload, name, tags and target; the new job's "
        "executions carry `replay_of`. A `quota_exceeded` execution (a schedule tick the quota refused) never made "
        "a job: 409 INVALID_STATE (trigger the schedule instead). So is an execution still running: replaying it "
        "would run the job twice at once; replay it once it has finished.",
    )
    @idempotent
    def replay(self, request: Request, execution_id: str) -> Response:
        self.strict_data(request, set())
        job = ops.execution_replay(workspace=self.workspace, execution_id=execution_id)
        return Response({"job": job_to_dict(job)}, status=status.HTTP_202_ACCEPTED)
