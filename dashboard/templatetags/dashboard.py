from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.inclusion_tag("dashboard/_action_form.html", takes_context=True)
def action_form(
    context: template.Context,
    route: str,
    *args: Any,
    label: str,
    confirm: str = "",
    danger: bool = False,
    data_action: str = "",
) -> dict[str, Any]:
    """One action button: a POST form (with the CSRF token) to `route`, whose last argument is the action;
    `confirm` asks first (data-confirm), `danger` styles it red."""
    return {
        "url": reverse(route, args=args),
        "label": label,
        "confirm": confirm,
        "danger": danger,
        "data_action": data_action or args[-1],
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def as_json(value: Any) -> str:
    """Payloads and errors as the API shows them (JSON), indented; autoescaping still applies."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def num(value: Any) -> str:
    """Thousands separators: 5,400."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.simple_tag
def when(value: datetime | None) -> SafeString | str:
    """A time in UTC with how long ago (or until) it is; the exact instant in `datetime` and the tooltip."""
    if value is None:
        return "—"
    now = timezone.now()
    relative = (
        f"{timesince(value, now, depth=1)} ago" if value <= now else f"in {timeuntil(value, now, depth=1)}"
    )
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{} UTC">{} <small>UTC</small> <small class="rel">· {}</small></time>',
        utc.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        relative.replace("\xa0", " "),
    )
