"""Sign-in and sign-out, the live change feed, and the dashboard's own static files."""

from __future__ import annotations

import mimetypes
from pathlib import Path

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
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.exceptions import ApplicationError
from config.ratelimit import login_rate_check
from dashboard.auth import (
    login_with_api_key,
    login_with_password,
    safe_next,
    session_start,
    session_workspace,
)
from dashboard.live import change_feed, feed_slot
from jobs.services.streams import take_in_thread

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "dashboard"

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
    slot = await take_in_thread(
        lambda: feed_slot(workspace.id), lambda taken: taken.release() if taken else None
    )
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
