"""Dashboard error pages: a dashboard 404 and a dashboard CSRF failure page, for dashboard URLs only.

The /v1 API keeps its JSON envelope (config.middleware's handlers): the 404 here is the dashboard's last route,
reached only by paths no other app claimed, and CSRF failures outside the dashboard (the admin) get Django's own
page. `CSRF_FAILURE_VIEW` (config/settings.py) points at `csrf_failure`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.csrf import csrf_failure as django_csrf_failure

from dashboard.auth import session_label, session_workspace

# Paths that belong to other apps: their errors keep those apps' own shapes.
NOT_DASHBOARD = ("/v1/", "/api/", "/admin/")


def is_dashboard_path(path: str) -> bool:
    return not any(path.startswith(prefix) or path == prefix.rstrip("/") for prefix in NOT_DASHBOARD)


def error_page(request: HttpRequest, *, status: int, title: str, message: str) -> HttpResponse:
    workspace = session_workspace(request)
    context = {
        "status": status,
        "title": title,
        "message": message,
        "workspace": workspace,
        "who": session_label(request) if workspace is not None else "",
    }
    return render(request, "dashboard/error.html", context, status=status)


def not_found(request: HttpRequest, **_: Any) -> HttpResponse:
    return error_page(
        request,
        status=404,
        title="Not found",
        message="There is nothing at this address in your workspace. It may have been deleted, or the link is wrong.",
    )


def with_dashboard_404(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view's Http404 as the dashboard's 404 page rather than the API's JSON (config.middleware.handler404)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return not_found(request)

    return wrapped


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if not is_dashboard_path(request.path):
        return django_csrf_failure(request, reason=reason)
    return error_page(
        request,
        status=403,
        title="This form has expired",
        message=(
            "The page was open too long or your session changed, so the form was not sent and nothing was changed. "
            "Go back, reload the page and try again."
        ),
    )
