from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def as_json(value: Any) -> str:
    """Payloads and errors as the API shows them (JSON), indented; autoescaping still applies."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
