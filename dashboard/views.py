"""Dashboard pages: server-rendered, every write through the owning app's service (never a raw model edit).

Actions are plain POST forms answered by a redirect (post/redirect/get); an ApplicationError from a service
becomes a flash message on the page redirected to. htmx only refreshes fragments (tables) in place when the
event stream (`/events`) says something changed, and every page works without JavaScript.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import services as alert_services
from alerts.selectors import alert_get, alert_list, webhook_get, webhook_list
from alerts.serializers import AlertIn, WebhookIn
from billing.services import billing_portal_create
from config.exceptions import ApplicationError, ValidationFailed
from config.pagination import paginate
from config.ratelimit import login_rate_check
from jobs.selectors import job_filters_from_params, job_get, job_list
from jobs.services import operations, queue_ops
from queues import services as queue_services
from queues.selectors import queue_get, queue_list
from schedules import services as schedule_services
from schedules.selectors import schedule_get

from . import selectors
from .auth import (
    login_with_api_key,
    login_with_password,
    safe_next,
    session_label,
    session_start,
    session_workspace,
    workspace_required,
)
from .live import change_feed, feed_slot

PAGE_SIZE = 25
STATIC_DIR = Path(__file__).resolve().parent / "static" / "dashboard"


def _render(
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


def _error_text(exc: ApplicationError) -> str:
    """The service's message, plus field messages when it gave any (ValidationFailed's details)."""
    parts = []
    for field, problems in (exc.details or {}).items():
        if isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems):
            parts.append(f"{field}: {' '.join(problems)}")
    return exc.message + (" (" + "; ".join(parts) + ")" if parts else "")


def _act(request: HttpRequest, back: str, action: Callable[[], str]) -> HttpResponse:
    """Run one service call; its success text or its error becomes a flash message on `back`."""
    try:
        messages.success(request, action())
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    return HttpResponseRedirect(safe_next(request, request.POST.get("next"), back))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- login ---------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(
        request, request.POST.get("next") or request.GET.get("next"), reverse("dashboard:queues")
    )
    if request.method == "GET":
        if session_workspace(request) is not None:
            return HttpResponseRedirect(next_url)
        return render(request, "dashboard/login.html", {"next": next_url})
    try:
        login_rate_check(request)  # the same per-address budget as POST /v1/auth/login
        if request.POST.get("method") == "api_key":
            workspace, key = login_with_api_key(raw_key=request.POST.get("api_key", ""))
            session_start(request, workspace=workspace, api_key=key)
        else:
            workspace, user = login_with_password(
                email=request.POST.get("email", ""), password=request.POST.get("password", "")
            )
            session_start(request, workspace=workspace, user=user)
    except ApplicationError as exc:  # Unauthorized, RateLimited
        messages.error(request, exc.message)
        return render(request, "dashboard/login.html", {"next": next_url}, status=400)
    return HttpResponseRedirect(next_url)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    messages.info(request, "Signed out.")
    return HttpResponseRedirect(reverse("dashboard:login"))


# --- queues --------------------------------------------------------------------------------------------------


@require_GET
@workspace_required
def queues(request: HttpRequest) -> HttpResponse:
    rows = selectors.queues_overview(workspace=request.workspace)  # type: ignore[attr-defined]
    return _render(
        request,
        "dashboard/queues.html",
        {"rows": rows, "states": selectors.STATES},
        fragment="dashboard/_queues_table.html",
    )


_QUEUE_ACTIONS = {
    "pause": lambda ws, q: (queue_services.queue_pause(workspace=ws, queue=q), f"Queue {q.name} paused.")[1],
    "resume": lambda ws, q: (queue_ops.queue_resume(workspace=ws, queue=q), f"Queue {q.name} resumed.")[1],
    "drain": lambda ws, q: (
        f"Queue {q.name} drained: "
        + _plural(operations.queue_drain(workspace=ws, queue=q), "job")
        + " removed."
    ),
    "retry-failed": lambda ws, q: (
        f"Queue {q.name}: "
        + _plural(operations.queue_retry_jobs(workspace=ws, queue=q, state="failed"), "failed job")
        + " sent back to waiting."
    ),
}


@require_POST
@workspace_required
def queue_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    if action not in _QUEUE_ACTIONS:
        raise Http404
    workspace = request.workspace  # type: ignore[attr-defined]
    return _act(
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
        error = _error_text(exc)
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
    return _render(request, "dashboard/jobs.html", context, fragment="dashboard/_jobs_table.html")


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
    return _render(request, "dashboard/job.html", context, fragment="dashboard/_job_body.html")


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

    return _act(request, reverse("dashboard:job", args=[name, job_id]), run)


@require_POST
@workspace_required
def replay(request: HttpRequest, execution_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    try:
        job = operations.execution_replay(workspace=workspace, execution_id=execution_id)
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
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
        messages.error(request, _error_text(exc))
        page = {"data": [], "next_cursor": None}
    context = {"queue": queue, "jobs": page["data"], "next_cursor": page["next_cursor"]}
    return _render(request, "dashboard/dlq.html", context, fragment="dashboard/_dlq_table.html")


@require_POST
@workspace_required
def dlq_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if action not in ("retry", "purge"):
        raise Http404

    def run() -> str:
        queue = queue_get(workspace=workspace, name=name)
        if action == "purge":
            return _plural(operations.dlq_purge(workspace=workspace, queue=queue), "failed job") + " deleted."
        ids = request.POST.getlist("id") or None
        return (
            _plural(operations.dlq_retry(workspace=workspace, queue=queue, ids=ids), "job")
            + " sent back to waiting."
        )

    return _act(request, reverse("dashboard:dlq", args=[name]), run)


# --- schedules -----------------------------------------------------------------------------------------------


@require_GET
@workspace_required
def schedules(request: HttpRequest) -> HttpResponse:
    rows = selectors.schedules_preview(workspace=request.workspace)  # type: ignore[attr-defined]
    return _render(
        request, "dashboard/schedules.html", {"rows": rows}, fragment="dashboard/_schedules_table.html"
    )


@require_POST
@workspace_required
def schedule_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if action not in ("pause", "resume", "trigger"):
        raise Http404

    def run() -> str:
        schedule = schedule_get(workspace=workspace, name=name)
        if action == "trigger":
            job = schedule_services.schedule_trigger(workspace=workspace, schedule=schedule)
            return f"Schedule {name} triggered: job {job.id}."
        service = schedule_services.schedule_pause if action == "pause" else schedule_services.schedule_resume
        service(workspace=workspace, schedule=schedule)
        return f"Schedule {name} {action}d."

    return _act(request, reverse("dashboard:schedules"), run)


# --- alerts and webhooks -------------------------------------------------------------------------------------


def _validated(serializer_class: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The API's own input serializer, so the dashboard accepts exactly what the API accepts."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationFailed(
            details={
                k: [str(m) for m in v] if isinstance(v, list) else [str(v)]
                for k, v in serializer.errors.items()
            }
        )
    return dict(serializer.validated_data)


def _optional(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


@require_http_methods(["GET", "POST"])
@workspace_required
def alerts(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if request.method == "POST":

        def create() -> str:
            data: dict[str, Any] = {
                "name": request.POST.get("name", "").strip(),
                "channel": request.POST.get("channel", ""),
                "target": request.POST.get("target", "").strip(),
                "queue": _optional(request.POST.get("queue")),
            }
            threshold = _optional(request.POST.get("consecutive_failures_threshold"))
            if threshold is not None:
                data["consecutive_failures_threshold"] = int(threshold) if threshold.isdigit() else threshold
            alert, secret = alert_services.alert_create(workspace=workspace, data=_validated(AlertIn, data))
            shown = f" Its signing secret (shown once): {secret}" if secret else ""
            return f"Alert {alert.name} created.{shown}"

        return _act(request, reverse("dashboard:alerts"), create)
    context = {
        "alerts": list(alert_list(workspace=workspace).order_by("-id")[:200]),
        "queue_names": list(workspace_queue_names(workspace)),
        "channels": ["email", "slack", "webhook"],
    }
    return _render(request, "dashboard/alerts.html", context)


@require_POST
@workspace_required
def alert_delete(request: HttpRequest, alert_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]

    def run() -> str:
        alert = alert_get(workspace=workspace, alert_id=alert_id)
        alert_services.alert_delete(workspace=workspace, alert=alert)
        return f"Alert {alert.name} deleted."

    return _act(request, reverse("dashboard:alerts"), run)


@require_http_methods(["GET", "POST"])
@workspace_required
def webhooks(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if request.method == "POST":

        def create() -> str:
            events = [e for e in re.split(r"[\s,]+", request.POST.get("events", "")) if e]
            data = {
                "url": request.POST.get("url", "").strip(),
                "events": events,
                "description": request.POST.get("description", "").strip(),
            }
            subscription, secret = alert_services.webhook_create(
                workspace=workspace, data=_validated(WebhookIn, data)
            )
            return f"Webhook {subscription.id} created. Its signing secret (shown once): {secret}"

        return _act(request, reverse("dashboard:webhooks"), create)
    context = {"webhooks": list(webhook_list(workspace=workspace).order_by("-id")[:200])}
    return _render(request, "dashboard/webhooks.html", context)


@require_POST
@workspace_required
def webhook_delete(request: HttpRequest, webhook_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]

    def run() -> str:
        subscription = webhook_get(workspace=workspace, webhook_id=webhook_id)
        alert_services.webhook_delete(workspace=workspace, subscription=subscription)
        return f"Webhook {webhook_id} deleted."

    return _act(request, reverse("dashboard:webhooks"), run)


# --- usage and billing ---------------------------------------------------------------------------------------


@require_GET
@workspace_required
def usage(request: HttpRequest) -> HttpResponse:
    return _render(request, "dashboard/usage.html", selectors.usage_overview(workspace=request.workspace))  # type: ignore[attr-defined]


@require_POST
@workspace_required
def billing_portal(request: HttpRequest) -> HttpResponse:
    """To Stripe's billing portal; with billing off (or Stripe down) the service's error is shown instead."""
    try:
        url = billing_portal_create(workspace=request.workspace)  # type: ignore[attr-defined]
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return HttpResponseRedirect(reverse("dashboard:usage"))
    return HttpResponseRedirect(url)


# --- live updates --------------------------------------------------------------------------------------------


async def events(request: HttpRequest) -> HttpResponse:
    """`GET /events`: the signed-in workspace's change feed (dashboard/live.py) for `hx-trigger="sse:changed"`."""
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    workspace = await sync_to_async(session_workspace)(request)
    if workspace is None:
        return HttpResponse(status=401)
    if not isinstance(request, ASGIRequest):
        # Under WSGI an endless stream would hold a worker thread; 204 tells EventSource not to reconnect, and
        # the pages' fallback polling keeps them fresh. config.front serves /events from the ASGI process.
        return HttpResponse(status=204)
    slot = await sync_to_async(feed_slot)(workspace.id)
    if slot is None:
        return HttpResponse(status=204)  # every stream slot of the workspace is taken: polling only
    response = StreamingHttpResponse(
        change_feed(request, workspace.id, slot), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


# --- the dashboard's own static files ------------------------------------------------------------------------


@require_GET
def asset(request: HttpRequest, filename: str) -> HttpResponse:
    """The dashboard's few files (htmx, its SSE extension, the CSS) without DEBUG or collectstatic."""
    path = (STATIC_DIR / filename).resolve()
    if path.parent != STATIC_DIR or not path.is_file():
        raise Http404
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # A few small files read whole: FileResponse's synchronous iterator would warn under ASGI.
    response = HttpResponse(path.read_bytes(), content_type=content_type)
    response["Cache-Control"] = "public, max-age=3600"
    return response
