"""Workspace settings (API keys: list, create, revoke) and the workers page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as account_services
from accounts.selectors import api_keys_active
from accounts.serializers import ApiKeyInSerializer
from config.api import validated
from config.exceptions import ApplicationError
from dashboard import selectors
from dashboard.auth import SESSION_API_KEY, workspace_required
from dashboard.views.common import act, error_text, render_page


def _settings_page(
    request: HttpRequest, *, form: dict[str, Any], issued: Any = None, status: int = 200
) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    context = {
        "keys": list(api_keys_active(workspace=workspace).order_by("-created_at")[:100]),
        "session_key": request.session.get(SESSION_API_KEY),
        "form": form,
        "issued": issued,
    }
    response = render_page(request, "dashboard/settings.html", context)
    response.status_code = status
    return response


NEW_KEY = "dashboard_new_key"


@require_http_methods(["GET", "POST"])
@workspace_required
def settings(request: HttpRequest) -> HttpResponse:
    """`POST` issues a named key (the service behind `POST /v1/keys`), then redirects; the raw key rides in the
    session to the next page view only (post/redirect/get: a reload cannot issue a second key)."""
    workspace = request.workspace  # type: ignore[attr-defined]
    if request.method == "GET":
        issued = request.session.pop(NEW_KEY, None)
        response = _settings_page(request, form={}, issued=issued)
        if issued:
            response["Cache-Control"] = "no-store"  # the raw key must not sit in a cache
        return response
    form = {"name": request.POST.get("name", "").strip()}
    try:
        data = validated(ApiKeyInSerializer, form, flat=True)
        issued = account_services.api_key_create_named(workspace=workspace, name=data["name"])
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        return _settings_page(request, form=form, status=400)
    request.session[NEW_KEY] = {"name": issued.key.name, "raw": issued.raw}
    return HttpResponseRedirect(reverse("dashboard:settings"))


@require_POST
@workspace_required
def key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]

    def run() -> str:
        key = account_services.api_key_revoke(workspace=workspace, key_id=key_id)
        return f"API key {key.name} ({key.prefix}…) revoked: it no longer works."

    return act(request, reverse("dashboard:settings"), run)


@require_GET
@workspace_required
def workers(request: HttpRequest) -> HttpResponse:
    rows = selectors.workers_overview(workspace=request.workspace)  # type: ignore[attr-defined]
    return render_page(request, "dashboard/workers.html", {"rows": rows})
