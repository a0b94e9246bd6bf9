"""Workers: register (an upsert when the worker names itself), heartbeat, deregister, list and get."""

from __future__ import annotations

import re

from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Worker
from jobs.services import pull
from spooled import services
from spooled.rest.base import SpooledView
from spooled.rest.shapes import heartbeat_interval_s, worker_shape

WORKER_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
STATUSES = ("healthy", "degraded", "offline", "draining")


class WorkerRegisterView(SpooledView):
    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only(
            "queue_name", "hostname", "worker_id", "worker_type", "max_concurrency", "metadata", "version"
        )
        name = body.text("queue_name", required=True, max_length=100)
        hostname = body.text("hostname", required=True, max_length=255)
        worker_id = body.text("worker_id", max_length=128)
        if worker_id and not WORKER_ID_RE.match(worker_id):
            body.errors["worker_id"] = ["1 to 128 characters: letters, digits, `.`, `_` or `-`."]
        concurrency = body.integer("max_concurrency", 1, 100, default=5)
        metadata = body.obj("metadata", default={})
        extra = {
            "spooled_worker_type": body.text("worker_type", max_length=64),
            "spooled_version": body.text("version", max_length=64),
        }
        body.done()
        self.require_queue(name)
        worker = services.worker_upsert(
            workspace=self.workspace,
            queue_name=name,
            hostname=hostname,
            name=worker_id,
            concurrency=concurrency,
            metadata={**metadata, **{k: v for k, v in extra.items() if v}},
        )
        queue = services.queue_get(workspace=self.workspace, name=name)
        return Response(
            {
                "id": worker.id,
                "queue_name": name,
                "lease_duration_secs": max(1, queue.lease_ms // 1000),
                "heartbeat_interval_secs": heartbeat_interval_s(),
            },
            status=201,
        )


class WorkerHeartbeatView(SpooledView):
    def post(self, request: Request, worker_id: str) -> Response:
        body = self.body(request)
        body.only("current_jobs", "status", "metadata")
        body.integer("current_jobs", 0, 10_000)
        status = body.text("status", max_length=16)
        if status is not None and status not in STATUSES:
            body.errors["status"] = [f"Expected one of {', '.join(STATUSES)}."]
        metadata = body.obj("metadata")
        body.done()
        worker = pull.worker_heartbeat(workspace=self.workspace, worker_id=worker_id)
        if status is not None or metadata is not None:
            kept = {k: v for k, v in worker.metadata.items() if k.startswith("spooled_")}
            user = (
                metadata
                if metadata is not None
                else {k: v for k, v in worker.metadata.items() if not k.startswith("spooled_")}
            )
            worker.metadata = {**user, **kept, **({"spooled_status": status} if status else {})}
            worker.save(update_fields=["metadata"])
        return Response({"success": True})


class WorkerDeregisterView(SpooledView):
    def post(self, request: Request, worker_id: str) -> Response:
        released = pull.worker_deregister(workspace=self.workspace, worker_id=worker_id)
        return Response({"success": True, "released_jobs": released})


class WorkersView(SpooledView):
    def get(self, request: Request) -> Response:
        workers = list(Worker.objects.filter(workspace=self.workspace).order_by("-id")[:1000])
        active = pull.worker_active_counts(workspace=self.workspace, worker_ids=[w.id for w in workers])
        return Response([worker_shape(w, active.get(w.id, 0)) for w in workers])


class WorkerView(SpooledView):
    def get(self, request: Request, worker_id: str) -> Response:
        worker = pull.worker_get(workspace=self.workspace, worker_id=worker_id)
        active = pull.worker_active_counts(workspace=self.workspace, worker_ids=[worker.id])
        return Response(worker_shape(worker, active.get(worker.id, 0)))
