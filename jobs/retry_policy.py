"""A job's own retry policy, checked by hand (jobs.validation): the same shape and bounds as a queue's
(API.md "Queues"), merged over the queue's."""

from __future__ import annotations

from typing import Any

from queues.models import DEFAULT_RETRY_POLICY

MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX = 1, 100
RETRY_POLICY_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_attempts": (MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX),
    "initial_delay_ms": (0, 86_400_000),
    "max_delay_ms": (0, 604_800_000),
}
RETRY_POLICY_FIELDS = frozenset(
    {"max_attempts", "backoff", "initial_delay_ms", "multiplier", "max_delay_ms", "jitter"}
)
BACKOFFS = frozenset({"exponential", "fixed"})
MULTIPLIER_MIN, MULTIPLIER_MAX = 1, 10
UNKNOWN_FIELD = ["Unknown field."]


def validate_retry_policy(
    value: Any, *, prefix: str, errors: dict[str, list[str]], base: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Check a (partial) retry policy and return it merged over `base`; errors go into `errors`."""
    if not isinstance(value, dict):
        errors[prefix] = ["Expected an object."]
        return None
    ok = True
    for key, item in value.items():
        field = f"{prefix}.{key}"
        if key not in RETRY_POLICY_FIELDS:
            errors[field] = UNKNOWN_FIELD
            ok = False
        elif key in RETRY_POLICY_INT_BOUNDS:
            low, high = RETRY_POLICY_INT_BOUNDS[key]
            if type(item) is not int or not low <= item <= high:
                errors[field] = [f"Expected an integer between {low} and {high}."]
                ok = False
        elif key == "backoff":
            if item not in BACKOFFS:
                errors[field] = ['Expected "exponential" or "fixed".']
                ok = False
        elif key == "multiplier":
            if type(item) not in (int, float) or not MULTIPLIER_MIN <= item <= MULTIPLIER_MAX:
                errors[field] = [f"Expected a number between {MULTIPLIER_MIN} and {MULTIPLIER_MAX}."]
                ok = False
        elif key == "jitter" and type(item) is not bool:
            errors[field] = ["Expected a boolean."]
            ok = False
    if not ok:
        return None
    merged = dict(base or DEFAULT_RETRY_POLICY)
    merged.update(value)
    if merged.get("max_delay_ms", 0) < merged.get("initial_delay_ms", 0):
        errors[f"{prefix}.max_delay_ms"] = ["Must be at least initial_delay_ms."]
        return None
    return merged
