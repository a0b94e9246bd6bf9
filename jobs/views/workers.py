"""`/v1/workers`: the pull-worker registry (API.md "Pull workers")."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import WorkspaceViewSet, error_responses, list_envelope
from config.exceptions import BadRequest
from config.idempotency import creates
from config.pagination import paginate
from jobs.models import Worker
from jobs.services import pull
from jobs.views.pull_inputs import (
    MAX_METADATA_BYTES,
    QUEUE_NAME_CHARS,
    WorkerInSchema,
    WorkerSchema,
    int_in,
    raise_if,
    text,
)
from queues.events import iso


def _worker_dict(worker: Worker, active_jobs: int, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": worker.id,
        "name": worker.name,
        "queues": worker.queues,
        "hostname": worker.hostname,
        "concurrency": worker.concurrency,
        "metadata": worker.metadata,
        "created_at": iso(worker.created_at),
        "last_seen_at": iso(worker.last_seen_at),
        "status": "online" if pull.worker_is_online(worker, now=now) else "offline",
        "active_jobs": active_jobs,
    }


# --- workers --------------------------------------------------------------------------------------


@extend_schema(tags=["Pull workers"])
class WorkerViewSet(WorkspaceViewSet):
    """`/v1/workers`: register, list, heartbeat and deregister pull workers."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status", str, enum=["online", "offline"], description="Only online or offline workers."
            ),
            OpenApiParameter("limit", int),
            OpenApiParameter("cursor", str),
        ],
        responses={200: list_envelope("WorkerList", WorkerSchema), **error_responses(400, 401)},
        description="Registered workers, newest first. `status` is derived from the last sign of life: `offline` "
        "after SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S (default 60 s) without a register, heartbeat, claim or job "
        "heartbeat. A worker silent for SPINDLE_WORKER_REAP_AFTER_S (default 5 min) is reaped by the sweeper: "
        "deleted, its leases released as on DELETE (its next heartbeat answers 404: register again).",
    )
    def list(self, request: Request) -> Response:
        queryset = Worker.objects.filter(workspace=self.workspace)
        wanted = request.query_params.get("status") or None
        if wanted not in (None, "online", "offline"):
            raise BadRequest(
                "`status` must be online or offline.", details={"status": ["Expected online or offline."]}
            )
        now = timezone.now()
        if wanted is not None:
            fresh = now - timedelta(seconds=settings.SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S)
            queryset = (
                queryset.filter(last_seen_at__gte=fresh)
                if wanted == "online"
                else queryset.filter(last_seen_at__lt=fresh)
            )

        def render(rows: list[Worker]) -> list[dict[str, Any]]:
            counts = pull.worker_active_counts(workspace=self.workspace, worker_ids=[w.id for w in rows])
            return [_worker_dict(w, counts.get(w.id, 0), now) for w in rows]

        return Response(paginate(queryset, request.query_params, render))

    @creates(
        WorkerInSchema,
        WorkerSchema,
        errors=(400, 401, 415, 422),
    )
    def create(self, request: Request) -> Response:
        data = self.strict_data(request, {"name", "queues", "hostname", "concurrency", "metadata"})
        errors: dict[str, list[str]] = {}
        name = text(data, "name", 128, errors, required=True)
        hostname = text(data, "hostname", 255, errors, required=False) or ""
        concurrency = int_in(data, "concurrency", 1, 10_000, errors) or 1
        queues = data.get("queues") or []
        if (
            not isinstance(queues, list)
            or len(queues) > 100
            or not all(
                isinstance(q, str) and 1 <= len(q) <= 64 and set(q) <= QUEUE_NAME_CHARS and q[0] not in "_.:-"
                for q in queues
            )
        ):
            errors["queues"] = ["Expected a list of at most 100 queue names."]
        metadata = data.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            errors["metadata"] = ["Expected an object."]
        elif len(json.dumps(metadata)) > MAX_METADATA_BYTES:
            errors["metadata"] = [f"At most {MAX_METADATA_BYTES} bytes."]
        raise_if(errors)
        worker = pull.worker_register(
            workspace=self.workspace,
            name=name,
            queues=list(dict.fromkeys(queues)),
            hostname=hostname,
            concurrency=concurrency,
            metadata=metadata,
        )
        return Response(_worker_dict(worker, 0), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: WorkerSchema, **error_responses(401, 404)})
    def heartbeat(self, request: Request, worker_id: str) -> Response:
        self.strict_data(request, set())
        worker = pull.worker_heartbeat(workspace=self.workspace, worker_id=worker_id)
        counts = pull.worker_active_counts(workspace=self.workspace, worker_ids=[worker.id])
        return Response(_worker_dict(worker, counts.get(worker.id, 0)))

    @extend_schema(responses={204: None, **error_responses(401, 404)})
    def destroy(self, request: Request, worker_id: str) -> Response:
        pull.worker_deregister(workspace=self.workspace, worker_id=worker_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
