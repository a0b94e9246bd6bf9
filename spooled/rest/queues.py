"""Queues: list, get, PUT config (an upsert: a queue first named here is a pull queue), stats, pause, resume,
delete. Spooled has no "create queue" call: queues come from this PUT or from the first job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, Sum
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Job, JobState, Worker
from jobs.services import queue_ops
from jobs.services.pull import worker_is_online
from queues import services as queue_services
from queues.events import iso
from queues.models import Event, Queue, QueueMinuteStat
from spooled import services
from spooled.rest.base import Body, SpooledView
from spooled.rest.shapes import queue_config


def _visible(view: SpooledView) -> Any:
    queues = Queue.objects.filter(workspace=view.workspace).order_by("name")
    key = view.scope_key()
    if key is not None and key.queues:
        queues = queues.filter(name__in=key.queues)
    return queues


class QueuesView(SpooledView):
    def get(self, request: Request) -> Response:
        return Response([queue_config(q) for q in _visible(self)])


class QueueView(SpooledView):
    def get(self, request: Request, name: str) -> Response:
        self.require_queue(name)
        return Response(queue_config(services.queue_get(workspace=self.workspace, name=name)))

    def delete(self, request: Request, name: str) -> Response:
        self.require_queue(name)
        queue = services.queue_get(workspace=self.workspace, name=name)
        force = request.query_params.get("delete_jobs") == "true"
        queue_ops.queue_delete(workspace=self.workspace, queue=queue, force=force)
        return Response(status=204)


def _changes(body: Body) -> tuple[dict[str, Any], bool | None]:
    """PUT config's body -> queue_update's data, and the wanted `enabled`."""
    retries = body.integer("max_retries", 0, 100)
    timeout = body.integer("default_timeout", 1, 3600)
    rate = body.integer("rate_limit", 1, 100_000)
    enabled = body.boolean("enabled")
    settings = body.obj("settings", default={})
    data: dict[str, Any] = {}
    if retries is not None:
        data["retry_policy"] = {"max_attempts": retries + 1}
    if timeout is not None:
        data["lease_ms"] = timeout * 1000
    if "rate_limit" in body.data:
        data["rate_limit"] = None if rate is None else {"max": rate, "per_ms": 1000}
    unknown = sorted(set(settings) - {"concurrency", "delivery"})
    if unknown:
        body.errors["settings"] = [f"Unknown setting: {', '.join(unknown)} (known: concurrency)."]
    concurrency = settings.get("concurrency")
    if concurrency is not None:
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= 10_000
        ):
            body.errors["settings"] = ["`concurrency` must be an integer from 1 to 10000."]
        else:
            data["concurrency"] = concurrency
    return data, enabled


class QueueConfigView(SpooledView):
    def put(self, request: Request, name: str) -> Response:
        body = self.body(request)
        body.only("max_retries", "default_timeout", "rate_limit", "enabled", "settings")
        services.queue_name_check(name, "name")
        data, enabled = _changes(body)
        body.done()
        self.require_queue(name)
        queue = services.queue_get_or_create_pull(workspace=self.workspace, name=name)
        if data:
            queue = queue_services.queue_update(workspace=self.workspace, queue=queue, data=data)
        if enabled is False and not queue.paused:
            queue = queue_services.queue_pause(workspace=self.workspace, queue=queue)
        elif enabled is True and queue.paused:
            queue = queue_ops.queue_resume(workspace=self.workspace, queue=queue)
        return Response(queue_config(queue))


class QueueStatsView(SpooledView):
    def get(self, request: Request, name: str) -> Response:
        self.require_queue(name)
        queue = services.queue_get(workspace=self.workspace, name=name)
        now = timezone.now()
        counts = dict(
            Job.objects.filter(
                workspace=self.workspace, queue=queue, state__in=[JobState.WAITING, JobState.ACTIVE]
            )
            .values_list("state")
            .annotate(n=Count("id"))
            .order_by()
        )
        day = QueueMinuteStat.objects.filter(queue=queue, minute__gte=now - timedelta(hours=24)).aggregate(
            completed=Sum("completed"),
            failed=Sum("failed"),
            timeout=Sum("timeout"),
            total_ms=Sum("duration_sum_ms"),
            n=Sum("duration_count"),
        )
        oldest = Job.objects.filter(workspace=self.workspace, queue=queue, state=JobState.WAITING).aggregate(
            at=Min("created_at")
        )["at"]
        workers = Worker.objects.filter(workspace=self.workspace, queues__contains=[queue.name])
        return Response(
            {
                "queue_name": queue.name,
                "pending_jobs": counts.get(JobState.WAITING, 0),
                "processing_jobs": counts.get(JobState.ACTIVE, 0),
                "completed_jobs_24h": day["completed"] or 0,
                "failed_jobs_24h": (day["failed"] or 0) + (day["timeout"] or 0),
                "active_workers": sum(1 for w in workers if worker_is_online(w, now=now)),
                "avg_processing_time_ms": (day["total_ms"] / day["n"]) if day["n"] else None,
                "max_job_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
            }
        )


class QueuePauseView(SpooledView):
    def post(self, request: Request, name: str) -> Response:
        body = self.body(request)
        body.only("reason")
        reason = body.text("reason", max_length=500)
        body.done()
        self.require_queue(name)
        queue = services.queue_get(workspace=self.workspace, name=name)
        queue_services.queue_pause(workspace=self.workspace, queue=queue)
        paused_at = _paused_at(self, queue) or timezone.now()
        return Response({"queue_name": name, "paused": True, "paused_at": iso(paused_at), "reason": reason})


def _paused_at(view: SpooledView, queue: Queue) -> Any:
    """When the queue was last paused (its newest queue:paused event)."""
    event = (
        Event.objects.filter(workspace=view.workspace, queue_name=queue.name, type="queue:paused")
        .order_by("-id")
        .first()
    )
    return event.created_at if event else None


class QueueResumeView(SpooledView):
    def post(self, request: Request, name: str) -> Response:
        self.require_queue(name)
        queue = services.queue_get(workspace=self.workspace, name=name)
        was_paused = queue.paused
        paused_at = _paused_at(self, queue) if was_paused else None
        queue_ops.queue_resume(workspace=self.workspace, queue=queue)
        duration = int((timezone.now() - paused_at).total_seconds()) if paused_at else 0
        return Response({"queue_name": name, "resumed": was_paused, "paused_duration_secs": duration})
