"""A queue's own page (settings, charts, jobs per state, promote and clean), its actions and its dead-letter queue."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from config.exceptions import ApplicationError, ValidationFailed
from dashboard import selectors
from dashboard.auth import workspace_required
from dashboard.views.common import (
    Action,
    action_view,
    error_text,
    found,
    jobs_page,
    page_of,
    plural,
    render_page,
)
from jobs.services import operations, queue_ops
from queues import services as queue_services
from queues.selectors import queue_get


@require_GET
@workspace_required
def queue_detail(request: HttpRequest, name: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    queue = found(queue_get, workspace=workspace, name=name)
    state = request.GET.get("state", "")
    span = request.GET.get("range", "1h")
    context = {
        "queue": queue,
        "state": state,
        "span": span if span in selectors.CHART_RANGES else "1h",
        "counts": selectors.queue_state_counts(workspace=workspace, queue=queue),
        "charts": selectors.queue_charts(queue=queue, span=span),
        "cleanable": [s for s in selectors.STATES if s != "active"],
        "ranges": list(selectors.CHART_RANGES),
        "live_scope": f"queue:{queue.name}",
        **jobs_page(request, workspace, queue=queue.name),
    }
    return render_page(request, "dashboard/queue.html", context, fragment="dashboard/_queue_body.html")


def _clean(request: HttpRequest, ws: Any, q: Any) -> str:
    grace = request.POST.get("grace_s", "0").strip() or "0"
    if not grace.isdigit():
        raise ValidationFailed(details={"grace_s": ["A whole number of seconds."]})
    state = request.POST.get("state", "")
    removed = operations.queue_clean(workspace=ws, queue=q, state=state, grace_ms=int(grace) * 1000)
    return f"Queue {q.name}: " + plural(removed, f"{state} job") + " removed."


_QUEUE_ACTIONS: dict[str, Action] = {
    "pause": lambda r, ws, q: (queue_services.queue_pause(workspace=ws, queue=q), f"Queue {q.name} paused.")[
        1
    ],
    "resume": lambda r, ws, q: (queue_ops.queue_resume(workspace=ws, queue=q), f"Queue {q.name} resumed.")[1],
    "drain": lambda r, ws, q: (
        f"Queue {q.name} drained: "
        + plural(operations.queue_drain(workspace=ws, queue=q), "job")
        + " removed."
    ),
    "retry-failed": lambda r, ws, q: (
        f"Queue {q.name}: "
        + plural(operations.queue_retry_jobs(workspace=ws, queue=q, state="failed"), "failed job")
        + " sent back to waiting."
    ),
    "promote": lambda r, ws, q: (
        f"Queue {q.name}: "
        + plural(operations.queue_promote_jobs(workspace=ws, queue=q), "delayed job")
        + " made ready now."
    ),
    "clean": _clean,
}


queue_action = action_view(_QUEUE_ACTIONS, queue_get, "dashboard:queues")


# --- dead-letter queue ---------------------------------------------------------------------------------------


@require_GET
@workspace_required
def dlq(request: HttpRequest, name: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    queue = found(queue_get, workspace=workspace, name=name)
    try:
        jobs = page_of(request, "jobs", operations.dlq_jobs(workspace=workspace, queue=queue))
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        jobs = {"jobs": [], "next_cursor": None}
    context = {
        "queue": queue,
        **jobs,
        "live_scope": f"queue:{queue.name}",
    }
    return render_page(request, "dashboard/dlq.html", context, fragment="dashboard/_dlq_table.html")


def _dlq_purge(request: HttpRequest, workspace: Any, queue: Any) -> str:
    return plural(operations.dlq_purge(workspace=workspace, queue=queue), "failed job") + " deleted."


def _dlq_retry(request: HttpRequest, workspace: Any, queue: Any) -> str:
    ids = request.POST.getlist("id") or None
    return (
        plural(operations.dlq_retry(workspace=workspace, queue=queue, ids=ids), "job")
        + " sent back to waiting."
    )


_DLQ_ACTIONS: dict[str, Action] = {"retry": _dlq_retry, "purge": _dlq_purge}


dlq_action = action_view(_DLQ_ACTIONS, queue_get, "dashboard:dlq", back_with_lookup=True)
