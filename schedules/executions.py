"""Executions: one row per attempt (API.md "Executions"). Read-only, workspace-scoped, keyset paginated.

The rows are jobs' (jobs.models.Execution); the views live in schedules because they also read schedules (names
shown and filtered by), and a view that reads two apps belongs to the higher one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import WorkspaceViewSet, error_responses, list_envelope
from config.exceptions import NotFound, ValidationFailed
from config.pagination import paginate
from jobs.models import Execution, ExecutionStatus, Job
from jobs.serializers import ExecutionSchema, execution_to_dict
from queues.models import Queue

from .models import Schedule

_FILTERS = [
    OpenApiParameter("status", str, enum=ExecutionStatus.values),
    OpenApiParameter("job_id", str),
    OpenApiParameter("queue", str, description="Queue name"),
    OpenApiParameter("schedule", str, description="Schedule name"),
    OpenApiParameter("limit", int),
    OpenApiParameter("cursor", str),
]


def _render(rows: list[Execution]) -> list[dict[str, Any]]:
    """Render a page; schedule names are looked up once for the page, not per row."""
    schedule_ids = {r.schedule_id for r in rows if r.schedule_id}
    names: dict[str, str] = {}
    if schedule_ids:
        names = dict(Schedule.objects.filter(id__in=schedule_ids).values_list("id", "name"))
    return [
        execution_to_dict(r, queue_name=r.queue.name, schedule_name=names.get(r.schedule_id or ""))
        for r in rows
    ]


class ExecutionsViewSet(WorkspaceViewSet):
    def _base(self):
        return Execution.objects.filter(workspace=self.workspace).select_related("queue")

    @extend_schema(
        parameters=_FILTERS,
        responses={200: list_envelope("ExecutionList", ExecutionSchema), **error_responses(400, 401)},
    )
    def list(self, request: Request) -> Response:
        """Executions newest first, filtered by status, job, queue or schedule."""
        params = request.query_params
        qs = self._base()
        status = params.get("status")
        if status:
            if status not in ExecutionStatus.values:
                raise ValidationFailed(
                    details={"status": [f"Expected one of {', '.join(ExecutionStatus.values)}."]}
                )
            qs = qs.filter(status=status)
        if params.get("job_id"):
            qs = qs.filter(job_id=params["job_id"])
        if params.get("queue"):
            qs = qs.filter(queue__name=params["queue"])
        if params.get("schedule"):
            ids = list(
                Schedule.objects.filter(workspace=self.workspace, name=params["schedule"]).values_list(
                    "id", flat=True
                )
            )
            qs = qs.filter(schedule_id__in=ids)
        return Response(paginate(qs, params, _render))

    @extend_schema(responses={200: ExecutionSchema, **error_responses(401, 404)})
    def retrieve(self, request: Request, execution_id: str) -> Response:
        """One execution."""
        row = self._base().filter(pk=execution_id).first()
        if row is None:
            raise NotFound("Execution not found.")
        return Response(_render([row])[0])

    @extend_schema(
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("cursor", str)],
        responses={200: list_envelope("JobExecutionList", ExecutionSchema), **error_responses(400, 401, 404)},
    )
    def for_job(self, request: Request, name: str, job_id: str) -> Response:
        """A job's attempts, newest first."""
        queue = Queue.objects.filter(workspace=self.workspace, name=name).first()
        if queue is None:
            raise NotFound("Queue not found.")
        if not Job.objects.filter(pk=job_id, queue=queue, workspace=self.workspace).exists():
            raise NotFound("Job not found.")
        # Index jobs_exec_job_attempt serves the job filter.
        return Response(paginate(self._base().filter(job_id=job_id), request.query_params, _render))
