"""Schedules, alerts, webhooks, usage and billing."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import services as alert_services
from alerts.selectors import alert_get, alert_list, webhook_get, webhook_list
from alerts.serializers import AlertIn, WebhookIn
from billing.services import billing_portal_create
from config.api import validated
from config.exceptions import ApplicationError
from dashboard import selectors
from dashboard.auth import (
    workspace_required,
)
from dashboard.views.common import act, error_text, render_live_page, render_page
from dashboard.views.jobs import workspace_queue_names
from schedules import services as schedule_services
from schedules.selectors import schedule_get

# --- schedules -----------------------------------------------------------------------------------------------


@require_GET
@workspace_required
def schedules(request: HttpRequest) -> HttpResponse:
    rows = selectors.schedules_preview(workspace=request.workspace)  # type: ignore[attr-defined]
    return render_live_page(
        request, "Schedules", "schedules-live", "dashboard/_schedules_table.html", {"rows": rows}
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

    return act(request, reverse("dashboard:schedules"), run)


# --- alerts and webhooks -------------------------------------------------------------------------------------


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
            alert, secret = alert_services.alert_create(
                workspace=workspace, data=validated(AlertIn, data, flat=True)
            )
            shown = f" Its signing secret (shown once): {secret}" if secret else ""
            return f"Alert {alert.name} created.{shown}"

        return act(request, reverse("dashboard:alerts"), create)
    context = {
        "alerts": list(alert_list(workspace=workspace).order_by("-id")[:200]),
        "queue_names": list(workspace_queue_names(workspace)),
        "channels": ["email", "slack", "webhook"],
    }
    return render_page(request, "dashboard/alerts.html", context)


@require_POST
@workspace_required
def alert_delete(request: HttpRequest, alert_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]

    def run() -> str:
        alert = alert_get(workspace=workspace, alert_id=alert_id)
        alert_services.alert_delete(workspace=workspace, alert=alert)
        return f"Alert {alert.name} deleted."

    return act(request, reverse("dashboard:alerts"), run)


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
                workspace=workspace, data=validated(WebhookIn, data, flat=True)
            )
            return f"Webhook {subscription.id} created. Its signing secret (shown once): {secret}"

        return act(request, reverse("dashboard:webhooks"), create)
    context = {"webhooks": list(webhook_list(workspace=workspace).order_by("-id")[:200])}
    return render_page(request, "dashboard/webhooks.html", context)


@require_POST
@workspace_required
def webhook_delete(request: HttpRequest, webhook_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]

    def run() -> str:
        subscription = webhook_get(workspace=workspace, webhook_id=webhook_id)
        alert_services.webhook_delete(workspace=workspace, subscription=subscription)
        return f"Webhook {webhook_id} deleted."

    return act(request, reverse("dashboard:webhooks"), run)


# --- usage and billing ---------------------------------------------------------------------------------------


@require_GET
@workspace_required
def usage(request: HttpRequest) -> HttpResponse:
    return render_page(request, "dashboard/usage.html", selectors.usage_overview(workspace=request.workspace))  # type: ignore[attr-defined]


@require_POST
@workspace_required
def billing_portal(request: HttpRequest) -> HttpResponse:
    """To Stripe's billing portal; with billing off (or Stripe down) the service's error is shown instead."""
    try:
        url = billing_portal_create(workspace=request.workspace)  # type: ignore[attr-defined]
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        return HttpResponseRedirect(reverse("dashboard:usage"))
    return HttpResponseRedirect(url)
