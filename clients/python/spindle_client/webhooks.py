"""Verifying Spindle's signed deliveries in a receiver (push jobs, webhook subscriptions, webhook alerts).

Spindle signs by the Standard Webhooks specification: `webhook-id`, `webhook-timestamp` (unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")>`, where key is the base64 part
of the `whsec_…` secret; while a secret rotation overlaps, the header holds several space-separated signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"


class InvalidSignature(Exception):
    """The delivery was not signed with this secret, was altered, or is outside the time tolerance."""


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError("the secret is not a whsec_ base64 secret") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """One `v1,…` signature, as Spindle computes it (a receiver's tests can sign their own fixtures with it)."""
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_delivery(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> None:
    """Return if `body` (the raw request body, unparsed) carries a valid signature by `secret`; else raise.

    `headers` is any mapping (names in any case). The timestamp must lie within `tolerance_s` of `now`
    (default: the clock), both ways, so a captured delivery cannot be replayed later.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not unix seconds") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    expected = sign(secret, msg_id, timestamp, body)
    # Any one of them may match: during a rotation the old and the new secret both sign.
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate, expected):
            return
    raise InvalidSignature("no signature matches")
