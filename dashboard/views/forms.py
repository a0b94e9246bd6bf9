"""Form handling shared by the dashboard's create and edit forms: a failed form comes back with its input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from config.exceptions import ApplicationError, ValidationFailed
from dashboard.views.common import error_text


def submit(
    request: HttpRequest,
    *,
    back: str,
    action: Callable[[], str],
    again: Callable[[dict[str, Any]], HttpResponse],
) -> HttpResponse:
    """Run the service; success: a flash message and a redirect to `back`. Failure: the error and the same page
    re-rendered by `again` with what was typed (status 400), so nothing has to be typed twice."""
    try:
        messages.success(request, action())
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
        response = again({k: request.POST.get(k, "") for k in request.POST if k != "csrfmiddlewaretoken"})
        response.status_code = 400
        return response
    return HttpResponseRedirect(back)


def optional(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def json_field(name: str, text: str | None) -> Any:
    """A JSON text box: empty is null; anything else must parse."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(details={name: [f"Not valid JSON: {exc.msg} (line {exc.lineno})."]}) from None


def whole_number(name: str, text: str | None) -> int | str | None:
    """A number box as the API expects it: an int when it is one, else the text (the service refuses it)."""
    text = (text or "").strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text
