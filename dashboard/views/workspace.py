"""Alerts (create, edit, enable, test, delete), webhooks (create, enable, delivery log, delete), usage and billing."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import services as alert_services
from alerts.selectors import alert_get, alert_list, webhook_deliveries, webhook_get, webhook_list
from alerts.serializers import AlertIn, WebhookIn
from billing.services import billing_portal_create
from config.api import validated
from config.exceptions import ApplicationError
from dashboard import selectors
from dashboard.auth import workspace_required
from dashboard.views.common import (
    Action,
    action_view,
    error_text,
    found,
    page_of,
    render_page,
    workspace_queue_names,
)
from dashboard.views.forms import optional, submit, whole_number

CHANNELS = ["email", "slack", "webhook"]

# --- alerts --------------------------------------------------------------------------------------------------


def _alert_data(request: HttpRequest) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": request.POST.get("name", "").strip(),
        "channel": request.POST.get("channel", ""),
        "target": request.POST.get("target", "").strip(),
        "queue": optional(request.POST.get("queue")),
        "enabled": request.POST.get("enabled") == "on",  # an unticked box is not sent at all
    }
    threshold = whole_number(
        "consecutive_failures_threshold", request.POST.get("consecutive_failures_threshold")
    )
    if threshold is not None:
        data["consecutive_failures_threshold"] = threshold
    return data


def _list_page(request: HttpRequest, title: str, rows: Any, **context: Any) -> HttpResponse:
    """A list, newest 200 first, and the form that adds to it: dashboard/<title>.html extends _list_page.html
    and shows its rows with dashboard/_<title>_table.html."""
    name = title.lower()
    table = f"dashboard/_{name}_table.html"
    page = {"title": title, "table": table, "rows": list(rows.order_by("-id")[:200]), **context}
    return render_page(request, f"dashboard/{name}.html", page)


def _alerts_page(request: HttpRequest, form: dict[str, Any], editing: Any = None) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    queue_names = list(workspace_queue_names(workspace))
    rows = alert_list(workspace=workspace)
    return _list_page(
        request, "Alerts", rows, queue_names=queue_names, channels=CHANNELS, form=form, editing=editing
    )


def _alert_form(alert: Any) -> dict[str, Any]:
    return {
        "name": alert.name,
        "channel": alert.channel,
        "target": alert.target,
        "queue": alert.queue_name or "",
        "consecutive_failures_threshold": alert.consecutive_failures_threshold,
        "enabled": "on" if alert.enabled else "",
    }


@require_http_methods(["GET", "POST"])
@workspace_required
def alerts(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if request.method == "GET":
        return _alerts_page(request, {"consecutive_failures_threshold": 1, "enabled": "on"})

    def create() -> str:
        alert, secret = alert_services.alert_create(
            workspace=workspace, data=validated(AlertIn, _alert_data(request), flat=True)
        )
        shown = f" Its signing secret (shown once): {secret}" if secret else ""
        return f"Alert {alert.name} created.{shown}"

    return submit(
        request, back=reverse("dashboard:alerts"), action=create, again=lambda f: _alerts_page(request, f)
    )


@require_http_methods(["GET", "POST"])
@workspace_required
def alert_edit(request: HttpRequest, alert_id: str) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    alert = found(alert_get, workspace=workspace, alert_id=alert_id)
    if request.method == "GET":
        return _alerts_page(request, _alert_form(alert), editing=alert)

    def save() -> str:
        data = validated(AlertIn, _alert_data(request), partial=True, flat=True)
        alert_services.alert_update(workspace=workspace, alert=alert, data=data, replace=False)
        return f"Alert {alert.name} saved."

    back = reverse("dashboard:alerts")
    return submit(request, back=back, action=save, again=lambda f: _alerts_page(request, f, editing=alert))


def _alert_delete(request: HttpRequest, workspace: Any, alert: Any) -> str:
    alert_services.alert_delete(workspace=workspace, alert=alert)
    return f"Alert {alert.name} deleted."


def _alert_test(request: HttpRequest, workspace: Any, alert: Any) -> str:
    alert_services.alert_test(workspace=workspace, alert=alert)
    return f"Test message to alert {alert.name} queued: it is sent within seconds."


def _alert_enabled(enabled: bool) -> Action:
    def run(request: HttpRequest, workspace: Any, alert: Any) -> str:
        alert_services.alert_update(
            workspace=workspace, alert=alert, data={"enabled": enabled}, replace=False
        )
        return f"Alert {alert.name} {'enabled' if enabled else 'disabled'}."

    return run


_ALERT_ACTIONS: dict[str, Action] = {
    "delete": _alert_delete,
    "test": _alert_test,
    "enable": _alert_enabled(True),
    "disable": _alert_enabled(False),
}


alert_action = action_view(_ALERT_ACTIONS, alert_get, "dashboard:alerts")


# --- webhooks ------------------------------------------------------------------------------------------------


def _webhooks_page(request: HttpRequest, form: dict[str, Any]) -> HttpResponse:
    return _list_page(request, "Webhooks", webhook_list(workspace=request.workspace), form=form)  # type: ignore[attr-defined]


@require_http_methods(["GET", "POST"])
@workspace_required
def webhooks(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if request.method == "GET":
        return _webhooks_page(request, {})

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

    return submit(
        request, back=reverse("dashboard:webhooks"), action=create, again=lambda f: _webhooks_page(request, f)
    )


@require_GET
@workspace_required
def webhook_detail(request: HttpRequest, webhook_id: str) -> HttpResponse:
    """A subscription and its delivery log, newest first: status, attempts, the receiver's answer."""
    workspace = request.workspace  # type: ignore[attr-defined]
    hook = found(webhook_get, workspace=workspace, webhook_id=webhook_id)
    context = {
        "hook": hook,
        **page_of(request, "deliveries", webhook_deliveries(workspace=workspace, subscription=hook)),
    }
    return render_page(request, "dashboard/webhook.html", context)


def _webhook_delete(request: HttpRequest, workspace: Any, subscription: Any) -> str:
    alert_services.webhook_delete(workspace=workspace, subscription=subscription)
    return f"Webhook {subscription.id} deleted."


def _webhook_enabled(enabled: bool) -> Action:
    def run(request: HttpRequest, workspace: Any, subscription: Any) -> str:
        data = {"enabled": enabled}
        alert_services.webhook_update(workspace=workspace, subscription=subscription, data=data)
        return f"Webhook {subscription.id} {'enabled' if enabled else 'disabled'}."

    return run


_WEBHOOK_ACTIONS: dict[str, Action] = {
    "delete": _webhook_delete,
    "enable": _webhook_enabled(True),
    "disable": _webhook_enabled(False),
}


webhook_action = action_view(_WEBHOOK_ACTIONS, webhook_get, "dashboard:webhooks")


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
