"""Header values masked on read, Stripe-style, for the API and the admin alike.

A header value is often a credential (`Authorization: Bearer …`, `X-Api-Key`), so no read shows it whole: the
first and last four characters are enough to tell two values apart, never enough to use one. A value too short
to keep eight characters hidden is masked entirely. A write that sends a masked value back unchanged keeps the
stored one (`headers_unmasked`), so a read-modify-write round trip never replaces a secret with its mask.
"""

from __future__ import annotations

from typing import Any

MASK = "…"
# Shorter values are masked entirely: showing eight characters of them would show most of the secret.
SHORTEST_PARTLY_SHOWN = 16
FULL_MASK = "••••" + MASK


def mask_value(value: str) -> str:
    if len(value) < SHORTEST_PARTLY_SHOWN:
        return FULL_MASK if value else value
    return f"{value[:4]}{MASK}{value[-4:]}"


def headers_masked(headers: dict[str, Any] | None) -> dict[str, Any] | None:
    if not headers:
        return headers
    return {name: mask_value(value) if isinstance(value, str) else value for name, value in headers.items()}


def target_masked(target: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of an {url, method, headers, …} target with its header values masked (the stored one is kept)."""
    if not isinstance(target, dict) or not isinstance(target.get("headers"), dict):
        return target
    return {**target, "headers": headers_masked(target["headers"])}


def headers_unmasked(new: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """`new` with every value that is the mask of the stored value of the same header put back to that value."""
    if not stored:
        return new
    return {
        name: stored[name]
        if isinstance(stored.get(name), str) and value == mask_value(stored[name])
        else value
        for name, value in new.items()
    }


def target_unmasked(new: Any, stored: Any) -> Any:
    """A submitted target whose masked header values, sent back unchanged, get their stored values back."""
    if not (isinstance(new, dict) and isinstance(new.get("headers"), dict) and isinstance(stored, dict)):
        return new
    stored_headers = stored.get("headers") if isinstance(stored.get("headers"), dict) else None
    return {**new, "headers": headers_unmasked(new["headers"], stored_headers)}
