"""Jobs: create, list, get, cancel, retry, priority, stats, batch status, bulk and history."""

from __future__ import annotations

from django.db.models import Count, Q
from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import ValidationFailed
from jobs.models import Execution, Job
from jobs.services import job_controls
from jobs.services.enqueue import job_enqueue, job_enqueue_batch
from jobs.services.job_controls import job_update
from queues.events import iso
from spooled import services
from spooled.rest.base import Body, SpooledView, query_when
from spooled.rest.job_inputs import CREATE_FIELDS, spec_of
from spooled.rest.paging import int_param, paged
from spooled.rest.shapes import job_full, job_summary
from spooled.states import TO_SPINDLE

MAX_BULK = 100
_ORDER = {"created_at": "created_at", "priority": "priority", "status": "state", "updated_at": "updated_at"}
_EXECUTION_EVENTS = {
    "running": "processing",
    "success": "completed",
    "failed": "failed",
    "timeout": "lease_expired",
    "deferred": "deferred",
    "dead_letter": "deadletter",
    "quota_exceeded": "quota_exceeded",
}


def _check_parent(workspace: object, body: Body, parent_id: str | None) -> None:
    if parent_id and not Job.objects.filter(workspace=workspace, id=parent_id).exists():
        body.errors["parent_job_id"] = ["No such job."]


class JobsView(SpooledView):
    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only(*CREATE_FIELDS)
        name = body.text("queue_name", required=True, max_length=100)
        spec = spec_of(body, workspace=self.workspace)
        _check_parent(self.workspace, body, spec.parent_id)
        body.done()
        self.require_queue(name)
        queue = services.queue_get_or_create_pull(workspace=self.workspace, name=name)
        job, created = job_enqueue(workspace=self.workspace, queue=queue, spec=spec)
        return Response({"id": job.id, "created": created}, status=201 if created else 200)

    def get(self, request: Request) -> Response:
        return paged(request, job_query(self, request), job_summary)


def job_query(view: SpooledView, request: Request, *, dead_letter: bool = False) -> object:
    """The jobs list's filters (`queue_name`, `status` csv, `q`, `job_type`, `tag`, `created_after/before`,
    `order_by`, `order_dir`); the DLQ is the same list restricted to dead-lettered jobs."""
    params = request.query_params
    jobs = Job.objects.filter(workspace=view.workspace).select_related("queue")
    if params.get("queue_name"):
        jobs = jobs.filter(queue__name=params["queue_name"])
    statuses = ["deadletter"] if dead_letter else [s for s in params.get("status", "").split(",") if s]
    if statuses:
        jobs = jobs.filter(_status_filter(statuses))
    if params.get("q"):
        text = params["q"]
        jobs = jobs.filter(
            Q(id__startswith=text) | Q(queue__name__icontains=text) | Q(payload__job_type__icontains=text)
        )
    if params.get("job_type"):
        # Spooled's job type is `payload.job_type`; a job enqueued on /v1 with a `name` matches by it too.
        jobs = jobs.filter(Q(payload__job_type=params["job_type"]) | Q(name=params["job_type"]))
    if params.get("tag"):
        jobs = jobs.filter(tags__contains=[params["tag"]])
    for name, lookup in (("created_after", "created_at__gte"), ("created_before", "created_at__lt")):
        if params.get(name):
            jobs = jobs.filter(**{lookup: query_when(params[name], name)})
    order = _ORDER.get(params.get("order_by") or "created_at")
    if order is None or params.get("order_dir", "desc") not in ("asc", "desc"):
        raise ValidationFailed(
            details={"order_by": [f"Expected one of {', '.join(_ORDER)}; order_dir asc|desc."]}
        )
    sign = "" if params.get("order_dir") == "asc" else "-"
    return jobs.order_by(f"{sign}{order}", f"{sign}id")


def _status_filter(statuses: list[str]) -> Q:
    unknown = [s for s in statuses if s not in TO_SPINDLE]
    if unknown:
        raise ValidationFailed(details={"status": [f"Unknown status: {', '.join(unknown)}."]})
    wanted = Q()
    for status in statuses:
        if status == "failed":
            wanted |= Q(state="delayed", attempts__gt=0)
        elif status == "scheduled":
            wanted |= Q(state="delayed", attempts=0)
        else:
            wanted |= Q(state=TO_SPINDLE[status])
    return wanted


class JobView(SpooledView):
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_full(services.job_by_id(workspace=self.workspace, job_id=job_id)))

    def delete(self, request: Request, job_id: str) -> Response:
        job = services.job_by_id(workspace=self.workspace, job_id=job_id)
        self.require_queue(job.queue.name)
        job = job_controls.job_cancel(workspace=self.workspace, queue=job.queue, job_id=job_id)
        return Response(job_full(job))


class JobRetryView(SpooledView):
    def post(self, request: Request, job_id: str) -> Response:
        job = services.job_by_id(workspace=self.workspace, job_id=job_id)
        self.require_queue(job.queue.name)
        retried = job_controls.job_retry(workspace=self.workspace, queue=job.queue, job_id=job_id)
        return Response(job_full(retried, job.queue.name))


class JobPriorityView(SpooledView):
    def put(self, request: Request, job_id: str) -> Response:
        body = self.body(request)
        body.only("priority")
        priority = body.integer("priority", -100, 100, required=True)
        body.done()
        job = services.job_by_id(workspace=self.workspace, job_id=job_id)
        self.require_queue(job.queue.name)
        updated = job_update(
            workspace=self.workspace, queue=job.queue, job_id=job_id, data={"priority": priority}
        )
        return Response({"job_id": job_id, "old_priority": job.priority, "new_priority": updated.priority})


class JobStatsView(SpooledView):
    def get(self, request: Request) -> Response:
        rows = (
            Job.objects.filter(workspace=self.workspace)
            .values_list("state")
            .annotate(n=Count("id"), retried=Count("id", filter=Q(attempts__gt=0)))
            .order_by()
        )
        stats = dict.fromkeys(
            ("pending", "scheduled", "processing", "completed", "failed", "deadletter", "cancelled"), 0
        )
        for state, n, retried in rows:
            if state == "delayed":
                stats["failed"] += retried
                stats["scheduled"] += n - retried
            else:
                stats[{v: k for k, v in TO_SPINDLE.items() if k != "failed"}[state]] += n
        return Response({**stats, "total": sum(stats.values())})


class JobStatusView(SpooledView):
    def get(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= MAX_BULK:
            raise ValidationFailed(details={"ids": [f"Give 1 to {MAX_BULK} comma-separated job ids."]})
        jobs = Job.objects.filter(workspace=self.workspace, id__in=ids).select_related("queue")
        return Response(
            [
                {
                    "id": job.id,
                    "status": job_summary(job)["status"],
                    "queue_name": job.queue.name,
                    "retry_count": job_summary(job)["retry_count"],
                    "created_at": iso(job.created_at),
                    "completed_at": iso(job.finished_at),
                }
                for job in jobs
            ]
        )


class JobHistoryView(SpooledView):
    def get(self, request: Request, job_id: str) -> Response:
        services.job_by_id(workspace=self.workspace, job_id=job_id)
        int_param(request, "limit", default=50, low=1, high=500)  # checked here, applied by `paged`
        sign = "" if request.query_params.get("order_dir", "asc") == "asc" else "-"
        rows = Execution.objects.filter(workspace=self.workspace, job_id=job_id).order_by(f"{sign}attempt")
        return paged(request, rows, _history_entry, max_limit=500)


def _history_entry(execution: Execution) -> dict[str, object]:
    return {
        "id": execution.id,
        "job_id": execution.job_id,
        "event_type": _EXECUTION_EVENTS.get(execution.status, execution.status),
        "worker_id": execution.worker_id,
        "details": {
            "attempt": execution.attempt,
            "error": execution.error,
            "duration_ms": execution.duration_ms,
            "completed_at": iso(execution.completed_at),
        },
        "created_at": iso(execution.started_at),
    }


class JobBulkView(SpooledView):
    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only("queue_name", "jobs", "default_priority", "default_max_retries", "default_timeout_seconds")
        name = body.text("queue_name", required=True, max_length=100)
        defaults = {
            "priority": body.integer("default_priority", -100, 100, default=0),
            "max_retries": body.integer("default_max_retries", 0, 100),
            "timeout_seconds": body.integer("default_timeout_seconds", 1, 86400),
        }
        items = body.data.get("jobs")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BULK:
            body.errors["jobs"] = [f"Expected a list of 1 to {MAX_BULK} jobs."]
        body.done()
        self.require_queue(name)
        specs, failed = [], []
        for index, item in enumerate(items):
            one = Body(item if isinstance(item, dict) else {})
            one.only("payload", "priority", "idempotency_key", "scheduled_at")
            spec = spec_of(one, defaults=defaults, workspace=self.workspace)
            if one.errors or not isinstance(item, dict):
                failed.append(
                    {"index": index, "error": _first_error(one.errors or {"job": ["Expected an object."]})}
                )
            else:
                specs.append((index, spec))
        queue = services.queue_get_or_create_pull(workspace=self.workspace, name=name)
        results = (
            job_enqueue_batch(workspace=self.workspace, queue=queue, specs=[s for _, s in specs])
            if specs
            else []
        )
        succeeded = [
            {"index": index, "job_id": job.id, "created": created}
            for (index, _), (job, created) in zip(specs, results, strict=True)
        ]
        return Response(
            {
                "succeeded": succeeded,
                "failed": failed,
                "total": len(items),
                "success_count": len(succeeded),
                "failure_count": len(failed),
            },
            status=201,
        )


def _first_error(errors: dict[str, list[str]]) -> str:
    field, messages = next(iter(errors.items()))
    return f"{field}: {messages[0]}"
