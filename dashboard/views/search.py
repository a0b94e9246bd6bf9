"""Job search by id or by text in payloads: the service behind `GET /v1/search` (jobs.services.operations)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from config.exceptions import ApplicationError
from config.pagination import paginate
from dashboard import selectors
from dashboard.auth import workspace_required
from dashboard.views.common import PAGE_SIZE, error_text, render_page, workspace_queue_names
from jobs.services.operations import search_jobs


@require_GET
@workspace_required
def search(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    kind = "payload" if request.GET.get("type") == "payload" else "job"
    q = request.GET.get("q", "").strip()
    queue = request.GET.get("queue", "").strip()
    context: dict[str, Any] = {
        "kind": kind,
        "q": q,
        "queue": queue,
        "queue_names": list(workspace_queue_names(workspace)),
        "states": selectors.STATES,
        "jobs": [],
        "searched": bool(q),
        "error": None,
        "next_query": None,
    }
    if q:
        params = request.GET.copy()
        params["limit"] = str(PAGE_SIZE)
        try:
            jobs = search_jobs(workspace=workspace, kind=kind, q=q, queue_name=queue or None)
            page = paginate(jobs, params, list)
        except ApplicationError as exc:
            context["error"] = error_text(exc)
        else:
            context["jobs"] = page["data"]
            if page["next_cursor"]:
                query = request.GET.copy()
                query["cursor"] = page["next_cursor"]
                context["next_query"] = query.urlencode()
    return render_page(request, "dashboard/search.html", context)
