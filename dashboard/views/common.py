"""What every dashboard page shares: rendering (page or live fragment) and flash-message actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from config.exceptions import ApplicationError
from config.pagination import paginate
from dashboard import selectors
from dashboard.auth import (
    safe_next,
    session_label,
    workspace_required,
)
from jobs.selectors import job_filters_from_params, job_list
from queues.selectors import queue_list

PAGE_SIZE = 25


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any], *, fragment: str | None = None
) -> HttpResponse:
    """The whole page, or only its live fragment when htmx asks for it (HX-Request on a fragment refresh)."""
    if fragment is not None and request.headers.get("HX-Request"):
        response = render(request, fragment, context)
    else:
        context = {"who": session_label(request), "workspace": request.workspace, **context}  # type: ignore[attr-defined]
        response = render(request, template, context)
    # One URL, two bodies: caches must key on the header that picks the fragment.
    patch_vary_headers(response, ["HX-Request"])
    return response


def live_page_view(title: str, rows: Callable[..., Any], **context: Any) -> Callable[..., HttpResponse]:
    """The GET view of a page that is only its title and one live fragment (dashboard/live_page.html), which
    shows `rows(workspace=…)`: for the title "Queues", dashboard/_queues_table.html in #queues-live."""
    name = title.lower()
    live_id, fragment = f"{name}-live", f"dashboard/_{name}_table.html"

    @require_GET
    @workspace_required
    def view(request: HttpRequest) -> HttpResponse:
        workspace = request.workspace  # type: ignore[attr-defined]
        page = {"title": title, "live_id": live_id, "fragment": fragment, "rows": rows(workspace=workspace)}
        return render_page(request, "dashboard/live_page.html", {**page, **context}, fragment=fragment)

    return view


def error_text(exc: ApplicationError) -> str:
    """The service's message, plus field messages when it gave any (ValidationFailed's details)."""
    parts = []
    for field, problems in (exc.details or {}).items():
        if isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems):
            parts.append(f"{field}: {' '.join(problems)}")
    return exc.message + (" (" + "; ".join(parts) + ")" if parts else "")


def act(request: HttpRequest, back: str, action: Callable[[], str]) -> HttpResponse:
    """Run one service call; its success text or its error becomes a flash message on `back`."""
    try:
        messages.success(request, action())
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
    return HttpResponseRedirect(safe_next(request, request.POST.get("next"), back))


# An action button's handler: (request, workspace, the object) -> the success text.
Action = Callable[[HttpRequest, Any, Any], str]


def action_view(
    actions: Mapping[str, Action], getter: Callable[..., Any], back: str, *, back_with_lookup: bool = False
) -> Callable[..., HttpResponse]:
    """The POST view of an object's action buttons (`…/<lookup>/<action>`): an unknown action is a 404; else the
    selector's object (its absence is a flash error, as a service's) goes to the action's handler through `act`,
    and the browser goes back to `back` (reversed with the lookup when `back_with_lookup`)."""

    @require_POST
    @workspace_required
    def view(request: HttpRequest, action: str, **lookup: Any) -> HttpResponse:
        handler = actions.get(action)
        if handler is None:
            raise Http404
        workspace = request.workspace  # type: ignore[attr-defined]
        url = reverse(back, kwargs=lookup if back_with_lookup else None)
        return act(request, url, lambda: handler(request, workspace, getter(workspace=workspace, **lookup)))

    return view


def page_of(request: HttpRequest, name: str, rows: Any) -> dict[str, Any]:
    """One keyset page of PAGE_SIZE rows at the request's `cursor`, as a paged template's context wants it: the
    rows under `name`, and `next_cursor` for its "Older" link."""
    params = request.GET.copy()
    params["limit"] = str(PAGE_SIZE)
    page = paginate(rows, params, list)
    return {name: page["data"], "next_cursor": page["next_cursor"]}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def workspace_queue_names(workspace: Any) -> Any:
    return queue_list(workspace=workspace).order_by("name").values_list("name", flat=True)


def jobs_page(request: HttpRequest, workspace: Any, *, queue: str | None = None) -> dict[str, Any]:
    """One page of jobs filtered as `GET /v1/jobs` filters (state, tag, queue), keyset-paginated, newest first."""
    params = request.GET.copy()
    params["limit"] = str(PAGE_SIZE)
    if queue is not None:
        params["queue"] = queue
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
    return {
        "jobs": page["data"],
        "next_query": next_query,
        "error": error,
        "states": selectors.STATES,
        "current": {k: request.GET.get(k, "") for k in ("state", "tag", "queue")},
    }


def found(getter: Callable[..., Any], **lookup: Any) -> Any:
    """The selector's object, or the dashboard's 404 page when the workspace has no such object."""
    try:
        return getter(**lookup)
    except ApplicationError:
        raise Http404 from None
