"""Queues, jobs, executions and the dead-letter queue."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from config.exceptions import ApplicationError
from config.pagination import paginate
from dashboard import selectors
from dashboard.auth import (
    safe_next,
    workspace_required,
)
from dashboard.views.common import PAGE_SIZE, act, error_text, plural, render_live_page, render_page
from jobs.selectors import job_filters_from_params, job_get, job_list
from jobs.services import operations, queue_ops
from queues import services as queue_services
from queues.selectors import queue_get, queue_list

# --- queues --------------------------------------------------------------------------------------------------


@require_GET
@workspace_required
def queues(request: HttpRequest) -> HttpResponse:
    rows = selectors.queues_overview(workspace=request.workspace)  # type: ignore[attr-defined]
    return render_live_page(
        request,
        "Queues",
        "queues-live",
        "dashboard/_queues_table.html",
        {"rows": rows, "states": selectors.STATES},
    )


_QUEUE_ACTIONS = {
    "pause": lambda ws, q: (queue_services.queue_pause(workspace=ws, queue=q), f"Queue {q.name} paused.")[1],
    "resume": lambda ws, q: (queue_ops.queue_resume(workspace=ws, queue=q), f"Queue {q.name} resumed.")[1],
    "drain": lambda ws, q: (
        f"Queue {q.name} drained: "
        + plural(operations.queue_drain(workspace=ws, queue=q), "job")
        + " removed."
    ),
    "retry-failed": lambda ws, q: (
        f"Queue {q.name}: "
        + plural(operations.queue_retry_jobs(workspace=ws, queue=q, state="failed"), "failed job")
        + " sent back to waiting."
    ),
}


@require_POST
@workspace_required
def queue_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    if action not in _QUEUE_ACTIONS:
        raise Http404
    workspace = request.workspace  # type: ignore[attr-defined]
    return act(
        request,
        reverse("dashboard:queues"),
        lambda: _QUEUE_ACTIONS[action](workspace, queue_get(workspace=workspace, name=name)),
    )


# --- jobs ----------------------------------------------------------------------------------------------------


@require_GET
@workspace_required
def jobs(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    params = request.GET.copy()
    params["limit"] = str(PAGE_SIZE)
    error = None
    page: dict[str, Any] = {"data": [], "next_cursor": None}
    try:
        filters = job_filters_from_params(params, allow_queue=True)
        page = paginate(job_list(workspace=workspace, filters=filters), params, list)
    except ApplicationError as exc:
        error = error_text(exc)
    next_query = None
    if page["next_cursor"]:
        query = request.GET.copy()
        query["cursor"] = page["next_cursor"]
        next_query = query.urlencode()
    context = {
        "jobs": page["data"],
        "next_query": next_query,
        "error": error,
        "states": selectors.STATES,
        "queue_names": list(workspace_queue_names(workspace)),
        "current": {k: request.GET.get(k, "") for k in ("state", "tag", "queue")},
    }
    return render_page(request, "dashboard/jobs.html", context, fragment="dashboard/_jobs_table.html")


def workspace_queue_names(workspace: Any) -> Any:
    return queue_list(workspace=workspace).order_by("name").values_list("name", flat=True)


@require_GET
@workspace_required
def job_detail(request: HttpRequest, name: str, job_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    try:
        queue = queue_get(workspace=workspace, name=name)
        job = job_get(workspace=workspace, queue=queue, job_id=job_id)
    except ApplicationError:
        raise Http404 from None
    context = {
        "queue": queue,
        "job": job,
        "executions": list(selectors.job_executions(workspace=workspace, job=job)[:50]),
    }
    return render_page(request, "dashboard/job.html", context, fragment="dashboard/_job_body.html")


@require_POST
@workspace_required
def job_action(request: HttpRequest, name: str, job_id: str, action: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    services = {"retry": operations.job_retry, "cancel": operations.job_cancel}
    if action not in services:
        raise Http404

    def run() -> str:
        queue = queue_get(workspace=workspace, name=name)
        job = services[action](workspace=workspace, queue=queue, job_id=job_id)
        return f"Job {job.id} is now {job.state}."

    return act(request, reverse("dashboard:job", args=[name, job_id]), run)


@require_POST
@workspace_required
def replay(request: HttpRequest, execution_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    try:
        job = operations.execution_replay(workspace=workspace, execution_id=execution_id)
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        return HttpResponseRedirect(safe_next(request, request.POST.get("next"), reverse("dashboard:jobs")))
    messages.success(request, f"Replayed as job {job.id}.")
    return HttpResponseRedirect(reverse("dashboard:job", args=[job.queue.name, job.id]))


# --- dead-letter queue ---------------------------------------------------------------------------------------


@require_GET
@workspace_required
def dlq(request: HttpRequest, name: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    try:
        queue = queue_get(workspace=workspace, name=name)
    except ApplicationError:
        raise Http404 from None
    params = request.GET.copy()
    params["limit"] = str(PAGE_SIZE)
    try:
        page = paginate(operations.dlq_jobs(workspace=workspace, queue=queue), params, list)
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        page = {"data": [], "next_cursor": None}
    context = {"queue": queue, "jobs": page["data"], "next_cursor": page["next_cursor"]}
    return render_page(request, "dashboard/dlq.html", context, fragment="dashboard/_dlq_table.html")


@require_POST
@workspace_required
def dlq_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if action not in ("retry", "purge"):
        raise Http404

    def run() -> str:
        queue = queue_get(workspace=workspace, name=name)
        if action == "purge":
            return plural(operations.dlq_purge(workspace=workspace, queue=queue), "failed job") + " deleted."
        ids = request.POST.getlist("id") or None
        return (
            plural(operations.dlq_retry(workspace=workspace, queue=queue, ids=ids), "job")
            + " sent back to waiting."
        )

    return act(request, reverse("dashboard:dlq", args=[name]), run)
