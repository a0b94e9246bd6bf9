"""The queues overview, the jobs list with its bulk actions, a job's page, its actions and replay."""

from __future__ import annotations

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
from dashboard import selectors
from dashboard.auth import (
    safe_next,
    workspace_required,
)
from dashboard.views.common import (
    act,
    error_text,
    jobs_page,
    live_page_view,
    plural,
    render_page,
    workspace_queue_names,
)
from jobs.selectors import job_get
from jobs.services import operations
from jobs.services.bulk import jobs_bulk_action
from queues.selectors import queue_get

# --- queues --------------------------------------------------------------------------------------------------


queues = live_page_view(
    "Queues", selectors.queues_overview, states=selectors.STATES, live_scope="kind:job: kind:queue:"
)


# --- jobs ----------------------------------------------------------------------------------------------------


@require_GET
@workspace_required
def jobs(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    context = jobs_page(request, workspace)
    queue = context["current"]["queue"]
    context["queue_names"] = list(workspace_queue_names(workspace))
    context["live_scope"] = f"queue:{queue}" if queue else "kind:job:"
    return render_page(request, "dashboard/jobs.html", context, fragment="dashboard/_jobs_table.html")


@require_POST
@workspace_required
def jobs_bulk(request: HttpRequest) -> HttpResponse:
    """Retry, cancel or delete the ticked jobs, each through its own service; what could not be done is listed."""
    workspace = request.workspace  # type: ignore[attr-defined]
    action = request.POST.get("action", "")
    back = safe_next(request, request.POST.get("next"), reverse("dashboard:jobs"))
    try:
        outcome = jobs_bulk_action(workspace=workspace, action=action, job_ids=request.POST.getlist("id"))
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        return HttpResponseRedirect(back)
    verb = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}[action]
    if outcome.done:
        messages.success(request, f"{plural(len(outcome.done), 'job')} {verb}.")
    for job_id, why in list(outcome.skipped.items())[:10]:
        messages.error(request, f"Job {job_id} skipped: {why}")
    return HttpResponseRedirect(back)


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
        "live_scope": f"job:{job.id}",
        **selectors.job_relations(workspace=workspace, job=job),
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
    """A new job copied from the execution's; a running execution is refused by the service (no duplicate)."""
    workspace = request.workspace  # type: ignore[attr-defined]
    try:
        job = operations.execution_replay(workspace=workspace, execution_id=execution_id)
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        return HttpResponseRedirect(safe_next(request, request.POST.get("next"), reverse("dashboard:jobs")))
    messages.success(request, f"Replayed as job {job.id}.")
    return HttpResponseRedirect(reverse("dashboard:job", args=[job.queue.name, job.id]))
