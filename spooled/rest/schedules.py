"""Schedules by id: list, create, get, update, delete, pause, resume, trigger and history (a schedule's runs are
the jobs it enqueued). Spooled's fields map onto Spindle's schedule and its job template."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import NotFound
from jobs.models import Job
from queues.events import iso
from schedules import services as schedule_services
from schedules.models import Schedule
from schedules.selectors import schedule_list, schedule_runs
from spooled import services
from spooled.rest.base import Body, SpooledView
from spooled.rest.job_inputs import tags_of
from spooled.rest.paging import paged
from spooled.rest.shapes import DEFAULT_TIMEOUT_S, error_text
from spooled.states import max_retries, spooled_state

FIELDS = (
    "name", "description", "cron_expression", "timezone", "queue_name", "payload_template", "priority",
    "max_retries", "timeout_seconds", "tags", "metadata",
)  # fmt: skip


def schedule_shape(schedule: Schedule, run_count: int) -> dict[str, Any]:
    job = schedule.job or {}
    attempts = (job.get("retry_policy") or {}).get("max_attempts")
    return {
        "id": schedule.id,
        "organization_id": schedule.workspace_id,
        "name": schedule.name,
        "description": schedule.description or None,
        "cron_expression": schedule.cron or f"@every {(schedule.interval_ms or 0) // 1000}s",
        "timezone": schedule.timezone or "UTC",
        "queue_name": schedule.queue.name,
        "payload_template": job.get("payload"),
        "priority": job.get("priority", 0),
        "max_retries": max_retries(attempts) if attempts else 3,
        "timeout_seconds": (job["timeout_ms"] // 1000) if job.get("timeout_ms") else DEFAULT_TIMEOUT_S,
        "is_active": not schedule.paused,
        "last_run_at": iso(schedule.last_run_at),
        "next_run_at": iso(schedule.next_run_at),
        "run_count": run_count,
        "tags": job.get("tags") or None,
        "metadata": None,
        "created_at": iso(schedule.created_at),
        "updated_at": iso(schedule.updated_at),
    }


def _run_counts(workspace: Any, ids: list[str]) -> dict[str, int]:
    rows = (
        Job.objects.filter(workspace=workspace, schedule_id__in=ids)
        .values_list("schedule_id")
        .annotate(n=Count("id"))
    )
    return dict(rows.order_by())


def _spindle_data(view: SpooledView, body: Body) -> dict[str, Any]:
    """A Spooled create/update body -> Spindle's schedule data (only the fields given)."""
    body.only(*FIELDS)
    body.refuse("metadata", "Schedule metadata is not stored by this server; leave it out.")
    given = body.data
    data: dict[str, Any] = {}
    job: dict[str, Any] = {}
    for ours, theirs in (("name", "name"), ("description", "description"), ("cron_expression", "cron"),
                         ("timezone", "timezone")):  # fmt: skip
        if ours in given:
            data[theirs] = given[ours]
    if "queue_name" in given:
        name = body.text("queue_name", max_length=100)
        if name:
            view.require_queue(name)
            data["queue"] = services.queue_get_or_create_pull(workspace=view.workspace, name=name).name
    if "payload_template" in given:
        job["payload"] = given["payload_template"]
    priority = body.integer("priority", -100, 100)
    retries = body.integer("max_retries", 0, 100)
    timeout = body.integer("timeout_seconds", 1, 86400)
    if priority is not None:
        job["priority"] = priority
    if retries is not None:
        job["retry_policy"] = {"max_attempts": retries + 1}
    if timeout is not None:
        job["timeout_ms"] = timeout * 1000
    if "tags" in given:
        job["tags"] = tags_of(body)
    body.done()
    if job:
        data["job"] = job
    return data


def _schedule(view: SpooledView, schedule_id: str) -> Schedule:
    found = Schedule.objects.filter(workspace=view.workspace, id=schedule_id).select_related("queue").first()
    if found is None:
        raise NotFound(f"Schedule '{schedule_id}' not found.")
    view.require_queue(found.queue.name)
    return found


def _one(view: SpooledView, schedule: Schedule) -> Response:
    """One schedule's shape, with its run count."""
    return Response(schedule_shape(schedule, _run_counts(view.workspace, [schedule.id]).get(schedule.id, 0)))


class SchedulesView(SpooledView):
    def get(self, request: Request) -> Response:
        active = request.query_params.get("is_active")
        rows = schedule_list(workspace=self.workspace, paused=None if active is None else active != "true")
        if request.query_params.get("queue_name"):
            rows = rows.filter(queue__name=request.query_params["queue_name"])
        rows = rows.order_by("name")
        response = paged(request, rows, lambda s: s)
        counts = _run_counts(self.workspace, [s.id for s in response.data])
        response.data = [schedule_shape(s, counts.get(s.id, 0)) for s in response.data]
        return response

    def post(self, request: Request) -> Response:
        body = self.body(request)
        for required in ("name", "cron_expression", "queue_name", "payload_template"):
            if required not in body.data:
                body.errors[required] = ["This field is required."]
        data = _spindle_data(self, body)
        data.setdefault("timezone", "UTC")
        schedule = schedule_services.schedule_create(workspace=self.workspace, data=data)
        return Response(
            {"id": schedule.id, "name": schedule.name, "cron_expression": schedule.cron,
             "next_run_at": iso(schedule.next_run_at)},
            status=201,
        )  # fmt: skip


class ScheduleView(SpooledView):
    def get(self, request: Request, schedule_id: str) -> Response:
        return _one(self, _schedule(self, schedule_id))

    def put(self, request: Request, schedule_id: str) -> Response:
        schedule = _schedule(self, schedule_id)
        data = _spindle_data(self, self.body(request))
        updated = schedule_services.schedule_update(workspace=self.workspace, schedule=schedule, data=data)
        return _one(self, updated)

    def delete(self, request: Request, schedule_id: str) -> Response:
        schedule_services.schedule_delete(workspace=self.workspace, schedule=_schedule(self, schedule_id))
        return Response(status=204)


class SchedulePauseView(SpooledView):
    change = staticmethod(schedule_services.schedule_pause)

    def post(self, request: Request, schedule_id: str) -> Response:
        return _one(self, self.change(workspace=self.workspace, schedule=_schedule(self, schedule_id)))


class ScheduleResumeView(SchedulePauseView):
    change = staticmethod(schedule_services.schedule_resume)


class ScheduleTriggerView(SpooledView):
    def post(self, request: Request, schedule_id: str) -> Response:
        job = schedule_services.schedule_trigger(
            workspace=self.workspace, schedule=_schedule(self, schedule_id)
        )
        return Response({"job_id": job.id, "triggered_at": iso(job.created_at)})


class ScheduleHistoryView(SpooledView):
    def get(self, request: Request, schedule_id: str) -> Response:
        schedule = _schedule(self, schedule_id)
        runs = schedule_runs(workspace=self.workspace, schedule=schedule).order_by("-id")
        return paged(request, runs, lambda job: _run_shape(schedule, job))


def _run_shape(schedule: Schedule, job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "schedule_id": schedule.id,
        "job_id": job.id,
        "status": spooled_state(job.state, job.attempts),
        "error_message": error_text(job.last_error),
        "started_at": iso(job.created_at),
        "completed_at": iso(job.finished_at),
    }
