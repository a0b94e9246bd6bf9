"""Queue routes: CRUD by name, pause/resume, secret rotation (thin: validate, call, render).

They live in jobs, not queues, because every answer carries the queue's live job counts and update, resume
and delete act on its jobs (jobs.services.queue_ops); queues sits below jobs (DESIGN.md "Layers")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import PAGE_PARAMETERS, WorkspaceViewSet, error_responses, list_envelope, validated_body
from config.exceptions import BadRequest
from config.pagination import paginate
from jobs.queue_selectors import queue_counts
from jobs.services import queue_ops
from queues import services
from queues.models import Queue
from queues.selectors import queue_get, queue_list
from queues.serializers import (
    PauseIn,
    QueueIn,
    QueueSchema,
    QueueWithSecretSchema,
    queue_to_dict,
    with_secret,
)
from queues.views import NAME_PARAM, secret_creating


def _parse_bool(params: Any, key: str) -> bool:
    raw = params.get(key)
    if raw in (None, ""):
        return False
    value = str(raw).lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"`{key}` must be true or false.", details={key: ["Expected true or false."]})


def _pause_action(change: Callable[..., Queue], description: str) -> Callable[..., Response]:
    """Pause or resume the queue, or only its jobs named by the body's `job_name`: the two take the same body
    and answer the same way; only what they do differs."""

    @extend_schema(
        parameters=[NAME_PARAM],
        request=PauseIn,
        responses={200: QueueSchema, **error_responses(400, 401, 404, 415)},
        description=description,
    )
    def action(self: QueueViewSet, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        serializer = PauseIn(data=self.strict_data(request, {"job_name"}))
        serializer.is_valid(raise_exception=True)
        job_name = serializer.validated_data.get("job_name")
        return Response(self._render(change(workspace=self.workspace, queue=queue, job_name=job_name)))

    return action


@extend_schema(tags=["Queues"])
class QueueViewSet(WorkspaceViewSet):
    """`/v1/queues` and `/v1/queues/{name}` with the queue operations this app owns."""

    def _render(self, queue: Any) -> dict[str, Any]:
        counts = queue_counts(workspace=self.workspace, queue_ids=[queue.id])
        return queue_to_dict(queue, counts=counts[queue.id])

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={200: list_envelope("QueueList", QueueSchema), **error_responses(400, 401)},
        description="The workspace's queues, newest first, with live job counts.",
    )
    def list(self, request: Request) -> Response:
        workspace = self.workspace

        def render(rows: Any) -> list[dict[str, Any]]:
            rows = list(rows)
            # One GROUP BY for the whole page, never one query per queue.
            counts = queue_counts(workspace=workspace, queue_ids=[q.id for q in rows])
            return [queue_to_dict(q, counts=counts[q.id]) for q in rows]

        return Response(paginate(queue_list(workspace=workspace), request.query_params, render))

    create = secret_creating(
        QueueIn,
        QueueWithSecretSchema,
        services.queue_create,
        queue_to_dict,
        key="signing_secret",
        description="Create a queue. The response carries `signing_secret` once; it is never shown again.",
    )

    @extend_schema(parameters=[NAME_PARAM], responses={200: QueueSchema, **error_responses(401, 404)})
    def retrieve(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        return Response(self._render(queue))

    @extend_schema(
        parameters=[NAME_PARAM],
        request=QueueIn,
        responses={200: QueueSchema, **error_responses(400, 401, 402, 404, 415)},
        description="Update any writable field; `retry_policy` is merged over the current policy.",
    )
    def partial_update(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        data = validated_body(request, QueueIn, partial=True)
        queue = queue_ops.queue_update(workspace=self.workspace, queue=queue, data=data)
        return Response(self._render(queue))

    @extend_schema(
        parameters=[
            NAME_PARAM,
            OpenApiParameter("force", OpenApiTypes.BOOL, description="Obliterate: delete its jobs too"),
        ],
        responses={204: None, **error_responses(400, 401, 404, 409)},
        description="Delete the queue. 409 while it has waiting, delayed or active jobs, unless `?force=true`.",
    )
    def destroy(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        force = _parse_bool(request.query_params, "force")
        queue_ops.queue_delete(workspace=self.workspace, queue=queue, force=force)
        return Response(status=status.HTTP_204_NO_CONTENT)

    pause = _pause_action(
        services.queue_pause, "Pause the queue, or only its jobs with `job_name`. Emits `queue:paused`."
    )
    resume = _pause_action(
        queue_ops.queue_resume, "Resume the queue, or only its jobs with `job_name`. Emits `queue:resumed`."
    )

    @extend_schema(
        parameters=[NAME_PARAM],
        request=None,
        responses={200: QueueWithSecretSchema, **error_responses(400, 401, 404)},
        description="A new `signing_secret`, shown once. The previous one keeps signing for 24 hours.",
    )
    def rotate_secret(self, request: Request, name: str) -> Response:
        queue = queue_get(workspace=self.workspace, name=name)
        self.strict_data(request, set())
        queue, secret = services.queue_rotate_secret(workspace=self.workspace, queue=queue)
        return Response(with_secret(self._render(queue), secret, key="signing_secret"))
