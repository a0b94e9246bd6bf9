"""Schedules: the list with next runs, a schedule's page (its runs and their outcomes), create, edit, delete."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from dashboard import selectors
from dashboard.auth import workspace_required
from dashboard.templatetags.dashboard import as_json
from dashboard.views.common import (
    Action,
    action_view,
    found,
    live_page_view,
    page_of,
    render_page,
    workspace_queue_names,
)
from dashboard.views.forms import json_field, optional, submit, whole_number
from schedules import services as schedule_services
from schedules.selectors import schedule_get, schedule_runs

FORM_FIELDS = ("name", "queue", "cron", "timezone", "interval_ms", "description", "overlap", "payload")


schedules = live_page_view("Schedules", selectors.schedules_preview, live_scope="kind:schedule:")


def _schedule_data(request: HttpRequest) -> dict[str, Any]:
    """The form as the API's schedule body: cron or interval (seconds in the form, ms in the body)."""
    post = request.POST
    data: dict[str, Any] = {
        "name": post.get("name", "").strip(),
        "queue": optional(post.get("queue")),
        "description": post.get("description", "").strip(),
        "overlap": post.get("overlap", "allow"),
        "job": {"payload": json_field("payload", post.get("payload"))},
    }
    if post.get("kind") == "interval":
        seconds = whole_number("interval_s", post.get("interval_s"))
        data["interval_ms"] = seconds * 1000 if isinstance(seconds, int) else seconds
        data["cron"] = None
        data["timezone"] = None  # a timezone belongs to cron schedules only
    else:
        data["cron"] = optional(post.get("cron"))
        data["timezone"] = optional(post.get("timezone")) or "UTC"
        data["interval_ms"] = None
    return data


def _form_page(request: HttpRequest, schedule: Any, form: dict[str, Any]) -> HttpResponse:
    context = {
        "schedule": schedule,
        "form": form,
        "queue_names": list(workspace_queue_names(request.workspace)),  # type: ignore[attr-defined]
    }
    return render_page(request, "dashboard/schedule_form.html", context)


def _initial(schedule: Any) -> dict[str, Any]:
    if schedule is None:
        return {"kind": "cron", "timezone": "UTC", "overlap": "allow"}
    payload = (schedule.job or {}).get("payload")
    return {
        "name": schedule.name,
        "queue": schedule.queue.name,
        "kind": "cron" if schedule.cron else "interval",
        "cron": schedule.cron or "",
        "timezone": schedule.timezone or "UTC",
        "interval_s": (schedule.interval_ms or 0) // 1000 or "",
        "description": schedule.description,
        "overlap": schedule.overlap,
        "payload": "" if payload is None else as_json(payload),
    }


@require_http_methods(["GET", "POST"])
@workspace_required
def schedule_edit(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """`schedules/new` and `schedules/{name}/edit`: one form, through schedule_create or schedule_update."""
    workspace = request.workspace  # type: ignore[attr-defined]
    schedule = None
    if name is not None:
        schedule = found(schedule_get, workspace=workspace, name=name)
    if request.method == "GET":
        return _form_page(request, schedule, _initial(schedule))

    def save() -> str:
        data = _schedule_data(request)
        if schedule is None:
            created = schedule_services.schedule_create(workspace=workspace, data=data)
            return f"Schedule {created.name} created."
        updated = schedule_services.schedule_update(workspace=workspace, schedule=schedule, data=data)
        return f"Schedule {updated.name} saved."

    back = reverse("dashboard:schedule", args=[request.POST.get("name", "").strip() or name or "-"])
    return submit(request, back=back, action=save, again=lambda form: _form_page(request, schedule, form))


@require_GET
@workspace_required
def schedule_detail(request: HttpRequest, name: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    schedule = found(schedule_get, workspace=workspace, name=name)
    runs = page_of(request, "runs", schedule_runs(workspace=workspace, schedule=schedule))
    row = selectors.schedule_preview(schedule)
    context = {
        "schedule": schedule,
        "row": row,
        **runs,
        "live_scope": "kind:schedule: kind:job:",
    }
    return render_page(request, "dashboard/schedule.html", context, fragment="dashboard/_schedule_runs.html")


def _trigger(request: HttpRequest, workspace: Any, schedule: Any) -> str:
    job = schedule_services.schedule_trigger(workspace=workspace, schedule=schedule)
    return f"Schedule {schedule.name} triggered: job {job.id}."


def _delete(request: HttpRequest, workspace: Any, schedule: Any) -> str:
    schedule_services.schedule_delete(workspace=workspace, schedule=schedule)
    return f"Schedule {schedule.name} deleted."


def _switch(service: Any, done: str) -> Action:
    def run(request: HttpRequest, workspace: Any, schedule: Any) -> str:
        service(workspace=workspace, schedule=schedule)
        return f"Schedule {schedule.name} {done}."

    return run


_ACTIONS: dict[str, Action] = {
    "pause": _switch(schedule_services.schedule_pause, "paused"),
    "resume": _switch(schedule_services.schedule_resume, "resumed"),
    "trigger": _trigger,
    "delete": _delete,
}


schedule_action = action_view(_ACTIONS, schedule_get, "dashboard:schedules")
